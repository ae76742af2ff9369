/* tokenizer_files.h — the vocabulary files of make-pipeline's tokenizer
 * folders, generated so that the tokenizers a pipeline names load and
 * encode text: a small real vocabulary, not the published one (which is
 * data we do not ship), in each tokenizer's own file format.
 *
 *   HOIST_VOCAB_CLIP    CLIPTokenizer: vocab.json + merges.txt, byte-level
 *                       BPE whose words end in "</w>"; the 256 byte
 *                       symbols, each again with "</w>", the merged
 *                       words, then <|startoftext|> and <|endoftext|> as
 *                       the last two ids (as in CLIP, where the end token
 *                       has the largest id).
 *   HOIST_VOCAB_QWEN2   Qwen2Tokenizer: vocab.json + merges.txt, GPT-2
 *                       byte-level BPE (a space is "Ġ" before the word),
 *                       then <|endoftext|>, <|im_start|>, <|im_end|>.
 *   HOIST_VOCAB_T5      T5TokenizerFast: tokenizer.json in the format of
 *                       Hugging Face's tokenizers library, a Unigram model
 *                       with <pad> 0, </s> 1, <unk> 2, the pieces, then
 *                       <extra_id_99> .. <extra_id_0>, the Metaspace
 *                       pre-tokenizer and decoder, and "$A </s>" as the
 *                       template.
 *   HOIST_VOCAB_UMT5    the same with <s> after <unk> and 300 extra ids.
 *
 * The merges and pieces come from one list of common English words:
 * Unigram pieces hold whole words, BPE merges build each word left to
 * right, so prompts tokenize into words or a few pieces of them, and into
 * bytes or letters (T5: <unk> for what no piece covers) elsewhere.  Every
 * id stays far below the vocab_size of the model configs beside them.
 *
 * Threading: pure; any call may run on any thread. */
#ifndef HOIST_TOKENIZER_FILES_H
#define HOIST_TOKENIZER_FILES_H

#include <stddef.h>

typedef enum hoist__vocab_kind {
  HOIST_VOCAB_NONE = 0,
  HOIST_VOCAB_CLIP,
  HOIST_VOCAB_QWEN2,
  HOIST_VOCAB_T5,
  HOIST_VOCAB_UMT5
} hoist__vocab_kind;

/* A generated file: its name in the tokenizer folder and its text (owned). */
typedef struct hoist__vocab_file {
  const char *name;
  char *text;
} hoist__vocab_file;

#define HOIST_VOCAB_MAX_FILES 2

/* The names of kind's files (static strings), in the order
 * hoist__vocab_files writes them; returns their count (0 for NONE). */
size_t hoist__vocab_file_names(hoist__vocab_kind kind, const char **names);

/* Generates kind's files into out[0 .. count): HOIST_OK, or
 * HOIST_NO_MEMORY with nothing left allocated.  Free with
 * hoist__vocab_files_free. */
int hoist__vocab_files(hoist__vocab_kind kind, hoist__vocab_file *out, size_t *count);
void hoist__vocab_files_free(hoist__vocab_file *files, size_t count);

#endif /* HOIST_TOKENIZER_FILES_H */
