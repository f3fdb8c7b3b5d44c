/*
 * Benchmark counterpart of provider/examples/lzms_decode.rs using wimlib's
 * public decompression API: decodes every chunk of a chunk pack (see
 * scripts/lzms_chunks.py --pack) on one thread, optionally writing the
 * decoded bytes to OUT.
 *
 * Build: cc -O2 -o lzms-decode-wimlib scripts/lzms-decode-wimlib.c -lwim
 * Usage: lzms-decode-wimlib PACK [OUT]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wimlib.h>

static uint32_t le32(const unsigned char *p)
{
	return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PACK [OUT]\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *pack = malloc(len);
	if (!pack || fread(pack, 1, len, f) != (size_t)len) {
		fprintf(stderr, "cannot read %s\n", argv[1]);
		return 1;
	}
	fclose(f);
	FILE *out = argc > 2 ? fopen(argv[2], "wb") : NULL;

	/* Largest chunk first, to size the decompressor once. */
	size_t max = 0;
	for (long at = 0; at + 8 <= len; at += 8 + le32(pack + at + 4))
		if (le32(pack + at) > max)
			max = le32(pack + at);
	struct wimlib_decompressor *d;
	if (wimlib_create_decompressor(WIMLIB_COMPRESSION_TYPE_LZMS, max, &d)) {
		fprintf(stderr, "cannot create decompressor\n");
		return 1;
	}
	unsigned char *buf = malloc(max ? max : 1);
	for (long at = 0; at + 8 <= len; at += 8 + le32(pack + at + 4)) {
		size_t usize = le32(pack + at), csize = le32(pack + at + 4);
		if (wimlib_decompress(pack + at + 8, csize, buf, usize, d)) {
			fprintf(stderr, "corrupt chunk at %ld\n", at);
			return 1;
		}
		if (out)
			fwrite(buf, 1, usize, out);
	}
	if (out)
		fclose(out);
	wimlib_free_decompressor(d);
	return 0;
}
