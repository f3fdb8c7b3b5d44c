/*
 * Counterpart of provider/examples/codec_decode.rs built on wimlib's
 * decoders, for scripts/bench-codecs.sh: decodes every chunk of a chunk pack
 * (scripts/lzms_chunks.py --pack) on one thread through wimlib's public
 * wimlib_decompress(), ROUNDS times, and prints the CPU time of those rounds
 * alone. With OUT, the decoded bytes of one round are written there first.
 *
 * Build: cc -O2 -I PREFIX/include -o codec-decode-wimlib \
 *            scripts/codec-decode-wimlib.c -L PREFIX/lib -Wl,-rpath,PREFIX/lib -lwim
 * Usage: codec-decode-wimlib xpress|lzx|lzms PACK ROUNDS [OUT]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wimlib.h>

static uint32_t le32(const unsigned char *p)
{
	return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}

static double now(clockid_t clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s xpress|lzx|lzms PACK ROUNDS [OUT]\n", argv[0]);
		return 2;
	}
	int type;
	if (!strcmp(argv[1], "xpress"))
		type = WIMLIB_COMPRESSION_TYPE_XPRESS;
	else if (!strcmp(argv[1], "lzx"))
		type = WIMLIB_COMPRESSION_TYPE_LZX;
	else if (!strcmp(argv[1], "lzms"))
		type = WIMLIB_COMPRESSION_TYPE_LZMS;
	else {
		fprintf(stderr, "unknown codec %s\n", argv[1]);
		return 2;
	}
	int rounds = atoi(argv[3]);
	FILE *f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *pack = malloc(len ? len : 1);
	if (!pack || fread(pack, 1, len, f) != (size_t)len) {
		fprintf(stderr, "cannot read %s\n", argv[2]);
		return 1;
	}
	fclose(f);

	size_t max = 0, total = 0;
	for (long at = 0; at + 8 <= len; at += 8 + le32(pack + at + 4)) {
		if (le32(pack + at) > max)
			max = le32(pack + at);
		total += le32(pack + at);
	}
	struct wimlib_decompressor *d;
	if (wimlib_create_decompressor(type, max, &d)) {
		fprintf(stderr, "cannot create decompressor\n");
		return 1;
	}
	unsigned char *buf = malloc(max ? max : 1);
	if (argc > 4) {
		FILE *out = fopen(argv[4], "wb");
		if (!out) {
			perror(argv[4]);
			return 1;
		}
		for (long at = 0; at + 8 <= len; at += 8 + le32(pack + at + 4)) {
			size_t usize = le32(pack + at), csize = le32(pack + at + 4);
			if (wimlib_decompress(pack + at + 8, csize, buf, usize, d)) {
				fprintf(stderr, "corrupt chunk at %ld\n", at);
				return 1;
			}
			fwrite(buf, 1, usize, out);
		}
		fclose(out);
	}
	double cpu = now(CLOCK_PROCESS_CPUTIME_ID), wall = now(CLOCK_MONOTONIC);
	for (int r = 0; r < rounds; r++)
		for (long at = 0; at + 8 <= len; at += 8 + le32(pack + at + 4))
			if (wimlib_decompress(pack + at + 8, le32(pack + at + 4), buf,
					      le32(pack + at), d)) {
				fprintf(stderr, "corrupt chunk at %ld\n", at);
				return 1;
			}
	printf("cpu_seconds=%.6f wall_seconds=%.6f bytes=%zu\n",
	       now(CLOCK_PROCESS_CPUTIME_ID) - cpu, now(CLOCK_MONOTONIC) - wall,
	       total * (size_t)rounds);
	wimlib_free_decompressor(d);
	return 0;
}
