/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fixed-VHD footer (Microsoft's "Virtual Hard Disk Image Format
 * Specification", hard disk footer format; big endian). */
#include <string.h>

#include "common.h"
#include "formats.h"


/* CHS geometry as the specification's appendix computes it. */
static void geometry(uint64_t size, uint16_t *cyl, uint8_t *heads, uint8_t *spt) {
        uint64_t ts = size / 512, cth;
        uint32_t h, s;

        if (ts > 65535ull * 16 * 255)
                ts = 65535ull * 16 * 255;
        if (ts >= 65535ull * 16 * 63) {
                s = 255;
                h = 16;
                cth = ts / s;
        } else {
                s = 17;
                cth = ts / s;
                h = (uint32_t)((cth + 1023) / 1024);
                if (h < 4)
                        h = 4;
                if (cth >= h * 1024ull || h > 16) {
                        s = 31;
                        h = 16;
                        cth = ts / s;
                }
                if (cth >= h * 1024ull) {
                        s = 63;
                        h = 16;
                        cth = ts / s;
                }
        }
        *cyl = (uint16_t)(cth / h);
        *heads = (uint8_t)h;
        *spt = (uint8_t)s;
}

void fmt_vhd_footer(uint64_t size, const uint8_t uid[16], time_t t, uint8_t out[FMT_VHD_FOOTER_SIZE]) {
        /* VHD timestamps count seconds from 2000-01-01 00:00:00 UTC. */
        const time_t epoch2000 = 946684800;
        uint32_t sum = 0;
        uint16_t cyl;
        uint8_t heads, spt;

        memset(out, 0, FMT_VHD_FOOTER_SIZE);
        memcpy(out, "conectix", 8);
        put_be32(out + 8, 2);                     /* features: reserved bit set */
        put_be32(out + 12, 0x00010000);           /* format version 1.0 */
        put_be64(out + 16, UINT64_MAX);           /* data offset: none (fixed) */
        put_be32(out + 24, t > epoch2000 ? (uint32_t)(t - epoch2000) : 0);
        memcpy(out + 28, "win ", 4);          /* creator application */
        put_be32(out + 32, 0x000a0000);           /* creator version */
        memcpy(out + 36, "Wi2k", 4);          /* creator host OS */
        put_be64(out + 40, size);                 /* original size */
        put_be64(out + 48, size);                 /* current size */
        geometry(size, &cyl, &heads, &spt);
        put_be16(out + 56, cyl);
        out[58] = heads;
        out[59] = spt;
        put_be32(out + 60, 2);                    /* disk type: fixed */
        memcpy(out + 68, uid, 16);
        for (unsigned i = 0; i < FMT_VHD_FOOTER_SIZE; i++)
                sum += out[i];
        put_be32(out + 64, ~sum);
}
