/* cli_group.c — options that load with other ranks (cli_group.h). */
#include "cli_group.h"

#include <stdlib.h>
#include <string.h>

const char cli_group_help[] =
    "  --rank R           this process is rank R of a group (default: $RANK)\n"
    "  --world-size W     ranks in the group (default: $WORLD_SIZE)\n"
    "  --rendezvous R     tcp://HOST:PORT (rank 0 listens there) or file:PATH (rank 0\n"
    "                     writes its loopback address there); default:\n"
    "                     $HOIST_RENDEZVOUS, else tcp://$MASTER_ADDR:$MASTER_PORT+1\n"
    "  --group-timeout S  a rank silent this long is lost (default 60)\n"
    "  --devices LIST     one rank per device in this process (cuda:0,cuda:1,..)\n"    "  --repeat N         with ranks: load N times and report each load's seconds\n"
    "                     (every rank ready before the first; for benchmarks)\n"
    "  --shard PLAN       tensor parallel: NAME:GLOB=DIM[,..] splits the tensors of\n"
    "                     component NAME matching GLOB on dimension DIM across ranks\n"
    "                     With ranks, --fsdp components load as this rank's FSDP2\n"
    "                     shard, others are read once across the ranks and\n"
    "                     broadcast (NCCL on cuda); under torchrun, RANK/WORLD_SIZE/\n"
    "                     LOCAL_RANK are read and --device cuda means cuda:LOCAL_RANK\n";

void cli_group_opts_init(cli_group_opts *g) {
  memset(g, 0, sizeof *g);
  g->opts = (hoist_group_options)HOIST_GROUP_OPTIONS_INIT;
  g->repeat = 1;
}

static const char *value(const char *cmd, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    cli_usage_error(cmd, "%s needs a value", argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

int cli_group_opt(const char *cmd, int argc, char **argv, int *i, cli_group_opts *g,
                  hoist_load_options *load) {
  const char *a = argv[*i], *v = NULL;
  uint64_t n = 0;
  if (strcmp(a, "--rank") != 0 && strcmp(a, "--world-size") != 0 &&
      strcmp(a, "--rendezvous") != 0 && strcmp(a, "--group-timeout") != 0 &&
      strcmp(a, "--devices") != 0 && strcmp(a, "--shard") != 0 && strcmp(a, "--repeat") != 0)
    return 0;
  if ((v = value(cmd, argc, argv, i)) == NULL) return -1;
  if (strcmp(a, "--rank") == 0) {
    if (!cli_parse_uint(v, 0, 4095, &n)) return cli_usage_error(cmd, "--rank takes 0..4095"), -1;
    g->opts.rank = (int)n;
    g->given = 1;
  } else if (strcmp(a, "--world-size") == 0) {
    if (!cli_parse_uint(v, 1, 4096, &n))
      return cli_usage_error(cmd, "--world-size takes 1..4096"), -1;
    g->opts.world_size = (int)n;
    g->given = 1;
  } else if (strcmp(a, "--rendezvous") == 0) {
    g->opts.rendezvous = v;
    g->given = 1;
  } else if (strcmp(a, "--group-timeout") == 0) {
    if (!cli_parse_uint(v, 1, 86400, &n))
      return cli_usage_error(cmd, "--group-timeout takes 1..86400 seconds"), -1;
    g->opts.timeout_seconds = (double)n;
  } else if (strcmp(a, "--devices") == 0) {
    g->devices = v;
  } else if (strcmp(a, "--repeat") == 0) {
    if (!cli_parse_uint(v, 1, 1000, &n)) return cli_usage_error(cmd, "--repeat takes 1..1000"), -1;
    g->repeat = (unsigned)n;
  } else {
    load->shard = v;
  }
  return 1;
}

bool cli_group_wanted(const cli_group_opts *g) {
  if (g->given || g->devices != NULL) return true;
  const char *rank = getenv("RANK"), *world = getenv("WORLD_SIZE");
  return rank != NULL && rank[0] != '\0' && world != NULL && atoi(world) > 1;
}

const char *cli_group_device(const char *device, const hoist_group *g, char *buf, size_t size) {
  if (device == NULL || strcmp(device, "cuda") != 0 || g == NULL) return device;
  snprintf(buf, size, "cuda:%d", hoist_group_local_rank(g));
  return buf;
}

int cli_group_devices(const char *cmd, const char *list, char specs[][32], int max) {
  int n = 0;
  for (const char *p = list;;) {
    const char *comma = strchr(p, ',');
    const size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    if (len == 0 || len >= 32 || n == max) {
      cli_usage_error(cmd, "--devices takes 1..%d devices (cuda:0,cuda:1,..)", max);
      return -1;
    }
    memcpy(specs[n], p, len);
    specs[n++][len] = '\0';
    if (comma == NULL) break;
    p = comma + 1;
  }
  return n;
}
