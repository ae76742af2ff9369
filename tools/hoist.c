/* hoist.c — the hoist command line: dispatches to one file per subcommand
 * (cmd_*.c).  Exit codes follow docs/cli.md (cli.h). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} commands[] = {
    {"inspect", cmd_inspect, "list the tensors of a .safetensors file, component or pipeline"},
    {"plan", cmd_plan, "discover a pipeline and print its memory-aware load order"},
    {"load", cmd_load, "load a pipeline into device memory and report throughput"},
    {"shards", cmd_shards, "what each rank of a group reads (FSDP and tensor-parallel splits)"},
    {"serve", cmd_serve, "keep a pipeline resident; workers attach to it (hoist_attach)"},
    {"bench", cmd_bench, "benchmark loads against the hardware limit"},
    {"manifest", cmd_manifest, "record a pipeline's content: sizes, SHA-256s, piece hashes"},
    {"check", cmd_check, "check a pipeline's files against a manifest (SHA-256)"},
    {"make-pipeline", cmd_make_pipeline, "write a realistic synthetic pipeline (presets)"},
};

static void usage(FILE *out) {
  fprintf(out, "usage: hoist COMMAND [OPTIONS] ...\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
  fprintf(out,
          "\nEvery command takes --json for machine-readable output and --help.\n"
          "exit codes: 0 ok, 1 failure, 2 usage, 3 invalid input, 4 does not fit,\n"
          "            5 device or driver error, 130 cancelled\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return HOIST_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return HOIST_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("hoist %s\n", hoist_version());
    return HOIST_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "hoist: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return HOIST_EXIT_USAGE;
}
