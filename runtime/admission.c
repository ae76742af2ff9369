/* admission.c — the admission rule, the load's headroom and the preflight
 * (admission.h).  Free memory is read by the caller just before a decision,
 * never cached: another allocator may have taken some since. */
#include "admission.h"

#include <stdio.h>

bool hoist__admits(uint64_t need, uint64_t headroom, uint64_t free_bytes) {
  return need <= free_bytes && headroom <= free_bytes - need;
}

uint64_t hoist__admission_headroom(const hoist__device *d, int64_t option, uint64_t total_bytes) {
  return option >= 0 ? (uint64_t)option : d->ops->default_headroom(d, total_bytes);
}

void hoist__admission_failure(hoist_load_failure *f, const char *component, uint64_t need,
                             uint64_t free_bytes) {
  if (f == NULL) return;
  snprintf(f->component, sizeof f->component, "%s", component);
  f->need_bytes = need;
  f->free_bytes = free_bytes;
}

int hoist__admission_preflight(hoist_runtime *rt, const loaded_component *components, size_t n,
                              const unsigned char *offload, uint64_t headroom,
                              uint64_t free_bytes, hoist_load_failure *failure) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    const loaded_component *c = &components[i];
    if (offload[i] || c->need == 0) continue;
    uint64_t next = sum + c->need, with_transient = 0;
    if (hoist__add_u64(next, c->held_bytes, &with_transient) &&
        hoist__admits(with_transient, headroom, free_bytes)) {
      sum = next;
      continue;
    }
    uint64_t total = next;
    for (size_t j = i + 1; j < n; j++)
      if (!offload[j]) total += components[j].need;
    hoist__admission_failure(failure, c->info->name, c->need + c->held_bytes + headroom,
                            free_bytes > sum ? free_bytes - sum : 0);
    return hoist__fail(rt, HOIST_ADMISSION,
                      "preflight: the plan needs %llu bytes on %s plus %llu headroom but %llu "
                      "are free; components before '%s' fit (%llu bytes), '%s' needs %llu "
                      "with %llu left; short by %llu bytes",
                      (unsigned long long)total, rt->dev->name, (unsigned long long)headroom,
                      (unsigned long long)free_bytes, c->info->name, (unsigned long long)sum,
                      c->info->name, (unsigned long long)c->need,
                      (unsigned long long)(free_bytes > sum + headroom ? free_bytes - sum - headroom
                                                                       : 0),
                      (unsigned long long)(total + headroom - free_bytes));
  }
  return HOIST_OK;
}
