/* manifest.h — the content manifest: its file format, its form in memory,
 * and the helpers its makers and readers share (manifest.c reads and
 * writes the format; manifest_make.c makes one from a pipeline;
 * manifest_check.c checks whole files against one; manifest_load.c holds a
 * load to one).  Not installed; nothing here is exported.
 *
 * File format, version 1 — JSON in UTF-8, as hoist_manifest_save writes it
 * and hoist_manifest_load reads it:
 *
 *   {
 *     "format": "hoist-manifest",      exactly this
 *     "version": 1,                    a reader refuses a version it does not know
 *     "piece_bytes": 1048576,          a power of two in [64 KiB, 1 GiB]
 *     "piece_hash": "xxh3-64",         XXH3, 64 bits, seed 0 (libxxhash's XXH3_64bits)
 *     "file_hash": "sha256",
 *     "variant": null,                 or the variant ("fp16") the files were selected with
 *     "files": [                       weight files, sorted by path (bytewise), unique
 *       {
 *         "path": "transformer/diffusion_pytorch_model-00001-of-00003.safetensors",
 *         "size": 9962580296,          bytes (integers are exact up to 2^53)
 *         "sha256": "<64 hex digits>", of the whole file
 *         -- for a .safetensors file, also:
 *         "header_bytes": 131072,      8 + N: the length prefix and the JSON header
 *         "header_xxh3": "<16 hex>",   of those 8 + N bytes
 *         "tensors": [                 in file-offset order, as the reader lists them
 *           {"name": "x_embedder.weight", "dtype": "BF16", "shape": [3072, 64],
 *            "data_offsets": [0, 393216],  relative to the data section
 *            "xxh3": "<16 hex digits per piece>"}
 *         ]
 *       }
 *     ],
 *     "side_files": [                  the JSON side files, sorted by path, unique
 *       {"path": "model_index.json", "size": 545, "sha256": "<64 hex digits>"}
 *     ]
 *   }
 *
 * Pieces: piece k of a tensor of n bytes covers its bytes
 * [k * piece_bytes, min((k + 1) * piece_bytes, n)); an empty tensor has
 * none ("xxh3": "").  Hashes are written in lowercase hex, a 64-bit value
 * most significant digit first (the canonical form xxhsum prints).  Paths
 * are relative to the pipeline folder, '/'-separated, with no empty, "."
 * or ".." component and no control character.  Side files are
 * model_index.json and, in every component folder (the pipeline folder for
 * a plain model), config.json and every shard index
 * (*.safetensors.index.json, *.safetensors.index.<variant>.json).
 * Members a reader does not know are ignored: a change that an older
 * reader must not ignore raises the version.  A manifest file above
 * HOIST_MANIFEST_MAX_BYTES, or breaking the JSON caps of side files
 * (nesting, value count, U+0000, duplicate keys), is refused before it is
 * parsed.
 *
 * Why pieces of a fixed size rather than the engine's chunks: the engine
 * cuts a tensor into chunks at multiples of its chunk size from the
 * tensor's first byte (a converting tensor at multiples of the conversion
 * slot), and puts small tensors whole into shared chunks.  When the chunk
 * and slot sizes are multiples of piece_bytes, every chunk holds whole
 * pieces, so a reader thread checks the chunk it just read by itself, in
 * any order, with no state kept between chunks; and one manifest serves
 * loads of any such chunk size. */
#ifndef HOIST_MANIFEST_H
#define HOIST_MANIFEST_H

#include "internal.h"

#define HOIST_MANIFEST_VERSION 1
#define HOIST_MANIFEST_MAX_BYTES (UINT64_C(128) << 20)
#define HOIST_MANIFEST_DEFAULT_PIECE (UINT64_C(1) << 20)
#define HOIST_MANIFEST_MIN_PIECE (UINT64_C(64) << 10)
#define HOIST_MANIFEST_MAX_PIECE (UINT64_C(1) << 30)

/* One tensor of a recorded safetensors file. */
typedef struct manifest_tensor {
  char *name;
  hoist_dtype dtype;
  uint32_t ndim;
  uint64_t *shape;      /* ndim dims, then the pieces: one allocation */
  uint64_t begin, end;  /* data_offsets */
  uint64_t *pieces;     /* ceil((end - begin) / piece_bytes) hashes, after the dims */
} manifest_tensor;

/* Gives t one block for its ndim dims and npieces hashes (shape, pieces);
 * false when out of memory or too large. */
bool hoist__manifest_tensor_alloc(manifest_tensor *t, uint32_t ndim, uint64_t npieces);

/* One recorded file; pub points into it. */
typedef struct manifest_file {
  hoist_manifest_file_info pub;
  char *path;
  char sha256[65];      /* lowercase hex */
  int safetensors;      /* header and tensors recorded */
  uint64_t header_bytes;
  uint64_t header_xxh3;
  manifest_tensor *tensors;
  size_t ntensors;
} manifest_file;

struct hoist_manifest {
  uint64_t piece_bytes;
  char *variant;        /* NULL: the default files */
  manifest_file *files; /* weight files sorted by path, then side files sorted */
  size_t nfiles;
  size_t nweights;      /* files[0, nweights) are weight files */
};

/* Pieces of a tensor of nbytes. */
static inline uint64_t hoist__manifest_pieces(uint64_t nbytes, uint64_t piece_bytes) {
  return nbytes / piece_bytes + (nbytes % piece_bytes != 0);
}

/* An empty manifest (NULL when out of memory). */
hoist_manifest *hoist__manifest_new(uint64_t piece_bytes, const char *variant);
/* Sorts files[0, nweights) and the side files by path and fills every
 * file's public view; HOIST_BAD_MANIFEST (status) when a path repeats. */
int hoist__manifest_finish(hoist_runtime *rt, hoist_manifest *m, int status, const char *shown);
/* The recorded weight file (side 0) or side file (side 1) at path rel;
 * NULL when there is none. */
const manifest_file *hoist__manifest_find(const hoist_manifest *m, const char *rel, int side);
/* HOIST_OK, or HOIST_INVALID_ARGUMENT for options of the wrong size or a
 * piece size out of range. */
int hoist__manifest_options_check(hoist_runtime *rt, const hoist_manifest_options *o);

/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void hoist__hex(const unsigned char *bytes, size_t n, char *out);

/* The pipeline folder of path (path itself, or the folder of a single
 * file) as a malloc'd string; NULL when out of memory. */
char *hoist__manifest_base(const char *path);
/* file's path relative to the folder base as the manifest records it: the
 * part after base and a '/' (a file that is not under base gets NULL).
 * malloc'd; NULL too when out of memory. */
char *hoist__manifest_relpath(const char *base, const char *file);
/* base and rel joined with one '/' (rel alone for an empty base), malloc'd;
 * NULL when out of memory. */
char *hoist__manifest_join(const char *base, const char *rel);
/* Whether rel is a path a manifest may hold (see the format above). */
bool hoist__manifest_path_ok(const char *rel);

/* The side files of the pipeline p (see the format above): *out gets n
 * malloc'd full paths (free each, then the array). */
int hoist__manifest_side_files(hoist_runtime *rt, const hoist_pipeline *p, char ***out, size_t *n);

#endif /* HOIST_MANIFEST_H */
