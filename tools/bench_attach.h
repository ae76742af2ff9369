/* bench_attach.h — `hoist bench attach` (bench_attach.c): attach latency to
 * a served pipeline, and a worker's restart by attach against hoist load. */
#ifndef HOIST_BENCH_ATTACH_H
#define HOIST_BENCH_ATTACH_H

/* argv[0] is "attach". */
int bench_attach(int argc, char **argv);

#endif
