/* text.h — UTF-8 validation and the one-line rendering of names in
 * messages (text.c).  hoist__show itself is declared in hoist_tools.h,
 * which the CLI shares; this header adds what only the runtime uses. */
#ifndef HOIST_TEXT_H
#define HOIST_TEXT_H

#include "hoist_tools.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns the offset of the first byte that is not part of valid UTF-8
 * (overlong forms, UTF-16 surrogates and code points above U+10FFFF are
 * invalid), or len when all of text is valid. */
size_t hoist__utf8_invalid_offset(const unsigned char *text, size_t len);

#endif /* HOIST_TEXT_H */
