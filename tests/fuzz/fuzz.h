/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fuzz target is LLVMFuzzerTestOneInput(). Built with -fsanitize=fuzzer it
 * runs under libFuzzer; built plainly (as meson does), this main() replays
 * the seed files given as arguments and, for each, a fixed number of
 * deterministic mutations (bit flips, byte stores, truncations, splices), so
 * that `meson test` exercises the parser on damaged input every run and the
 * sanitizer pass of tests/run.sh catches memory errors.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef FUZZ_NO_MAIN
static uint64_t fuzz_rng(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static unsigned char *fuzz_read(const char *path, size_t *len) {
        FILE *f = fopen(path, "rb");
        unsigned char *buf = NULL;
        size_t cap = 0, n = 0, k;
        if (!f)
                return NULL;
        do {
                if (n == cap) {
                        cap = cap ? 2 * cap : 65536;
                        buf = realloc(buf, cap);
                        if (!buf)
                                break;
                }
                k = fread(buf + n, 1, cap - n, f);
                n += k;
        } while (k > 0);
        fclose(f);
        *len = n;
        return buf;
}

int main(int argc, char **argv) {
        unsigned rounds = getenv("FUZZ_ROUNDS") ? (unsigned)atoi(getenv("FUZZ_ROUNDS")) : 300;
        for (int a = 1; a < argc; a++) {
                size_t len = 0;
                unsigned char *seed = fuzz_read(argv[a], &len), *m;
                uint64_t st = 0x9e3779b97f4a7c15ull ^ (uint64_t)a;
                if (!seed) {
                        fprintf(stderr, "cannot read seed %s\n", argv[a]);
                        return 1;
                }
                LLVMFuzzerTestOneInput(seed, len);
                m = malloc(len + 64);
                for (unsigned r = 0; m && r < rounds; r++) {
                        size_t n = len;
                        memcpy(m, seed, len);
                        for (unsigned k = 0, muts = 1 + (unsigned)(fuzz_rng(&st) % 8); k < muts && n > 0; k++) {
                                size_t at = (size_t)(fuzz_rng(&st) % n);
                                switch (fuzz_rng(&st) % 5) {
                                case 0: m[at] ^= (unsigned char)(1u << (fuzz_rng(&st) % 8)); break;
                                case 1: m[at] = (unsigned char)fuzz_rng(&st); break;
                                case 2: m[at] = (unsigned char)(fuzz_rng(&st) & 1 ? 0xff : 0); break;
                                case 3: n = at + 1; break; /* truncate */
                                default: { /* copy a run inside the buffer */
                                        size_t from = (size_t)(fuzz_rng(&st) % n), l = (size_t)(fuzz_rng(&st) % 32);
                                        if (from + l <= n && at + l <= n)
                                                memmove(m + at, m + from, l);
                                }
                                }
                        }
                        LLVMFuzzerTestOneInput(m, n);
                }
                free(m);
                free(seed);
        }
        return 0;
}
#endif
