/*
 * test_framer.c - unit tests for src/framer.c, the HEP3 stream framer:
 * whole frames, frames split anywhere (byte by byte, inside the header,
 * across the buffer's end), bad magic, lengths below the header or above
 * the limit, and the largest frame HEP3 can express.
 */
#include "bytes.h"
#include "framer.h"
#include "hep.h"
#include "unit.h"

#include <stdint.h>

#define TEST_MAX_FRAME 1024

/* A HEP3 frame of total length len, filled with a recognisable byte. */
static size_t make_frame(uint8_t *buf, size_t len, uint8_t fill)
{
    memcpy(buf, HEP3_MAGIC, 4);
    bytes_put_be16(buf + 4, (uint16_t)len);
    memset(buf + HEP3_HDR_LEN, fill, len - HEP3_HDR_LEN);
    return len;
}

/* Drains every whole frame; returns how many, checking each one's fill byte. */
static size_t drain_frames(struct framer *f, uint8_t *first_fill, size_t *lens, size_t max,
                           enum framer_status *last)
{
    const uint8_t *frame;
    size_t len, n = 0;
    enum framer_status st;
    while ((st = framer_next(f, &frame, &len)) == FRAMER_OK) {
        CU_ASSERT_FATAL(n < max);
        CU_ASSERT(memcmp(frame, HEP3_MAGIC, 4) == 0);
        if (first_fill != NULL)
            first_fill[n] = len > HEP3_HDR_LEN ? frame[HEP3_HDR_LEN] : 0;
        lens[n++] = len;
    }
    if (last != NULL)
        *last = st;
    return n;
}

static void test_one_frame(void)
{
    struct framer f;
    uint8_t buf[100], fill[4];
    size_t lens[4];
    enum framer_status st;
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    size_t len = make_frame(buf, 100, 'a');
    CU_ASSERT(framer_feed(&f, buf, len) == len);
    CU_ASSERT(drain_frames(&f, fill, lens, 4, &st) == 1);
    CU_ASSERT(st == FRAMER_NEED_MORE);
    CU_ASSERT(lens[0] == 100);
    CU_ASSERT(fill[0] == 'a');
    CU_ASSERT(framer_pending(&f) == 0);
    framer_free(&f);
}

static void test_many_frames_in_one_chunk(void)
{
    struct framer f;
    uint8_t buf[TEST_MAX_FRAME], fill[8];
    size_t lens[8], off = 0;
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    for (int i = 0; i < 5; i++)
        off += make_frame(buf + off, 20 + (size_t)i * 10, (uint8_t)('a' + i));
    CU_ASSERT(framer_feed(&f, buf, off) == off);
    CU_ASSERT(drain_frames(&f, fill, lens, 8, NULL) == 5);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT(lens[i] == 20 + (size_t)i * 10);
        CU_ASSERT(fill[i] == 'a' + i);
    }
    framer_free(&f);
}

static void test_byte_by_byte(void)
{
    struct framer f;
    uint8_t buf[TEST_MAX_FRAME], fill[8];
    size_t lens[8], off = 0, got = 0;
    enum framer_status st;
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    off += make_frame(buf + off, 7, 'x');      /* header + one byte */
    off += make_frame(buf + off, 300, 'y');
    off += make_frame(buf + off, HEP3_HDR_LEN, 0);  /* header only: legal framing */
    for (size_t i = 0; i < off; i++) {
        CU_ASSERT_FATAL(framer_feed(&f, buf + i, 1) == 1);
        got += drain_frames(&f, fill + got, lens + got, 8 - got, &st);
        CU_ASSERT(st == FRAMER_NEED_MORE);
    }
    CU_ASSERT(got == 3);
    CU_ASSERT(lens[0] == 7 && fill[0] == 'x');
    CU_ASSERT(lens[1] == 300 && fill[1] == 'y');
    CU_ASSERT(lens[2] == HEP3_HDR_LEN);
    framer_free(&f);
}

static void test_split_header(void)
{
    struct framer f;
    uint8_t buf[64], fill[2];
    size_t lens[2];
    enum framer_status st;
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    make_frame(buf, 64, 'h');
    /* "HEP3" and the first length byte, then the rest */
    CU_ASSERT(framer_feed(&f, buf, 5) == 5);
    CU_ASSERT(drain_frames(&f, fill, lens, 2, &st) == 0);
    CU_ASSERT(st == FRAMER_NEED_MORE);
    CU_ASSERT(framer_feed(&f, buf + 5, 59) == 59);
    CU_ASSERT(drain_frames(&f, fill, lens, 2, &st) == 1);
    CU_ASSERT(lens[0] == 64 && fill[0] == 'h');
    framer_free(&f);
}

/* A partial frame left at the end of the buffer moves to the front. */
static void test_frame_split_across_reads(void)
{
    struct framer f;
    uint8_t buf[3 * TEST_MAX_FRAME], fill[8];
    size_t lens[8], off = 0, got = 0;
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    off += make_frame(buf + off, 600, '1');
    off += make_frame(buf + off, 1000, '2');    /* crosses the 1024-byte buffer end */
    off += make_frame(buf + off, 1024, '3');
    size_t pos = 0;
    while (pos < off) {
        size_t room;
        uint8_t *p = framer_space(&f, &room);
        CU_ASSERT_FATAL(room > 0);
        size_t n = off - pos < room ? off - pos : room;
        memcpy(p, buf + pos, n);
        framer_commit(&f, n);
        pos += n;
        got += drain_frames(&f, fill + got, lens + got, 8 - got, NULL);
    }
    CU_ASSERT(got == 3);
    CU_ASSERT(lens[0] == 600 && fill[0] == '1');
    CU_ASSERT(lens[1] == 1000 && fill[1] == '2');
    CU_ASSERT(lens[2] == 1024 && fill[2] == '3');
    framer_free(&f);
}

static void test_bad_magic(void)
{
    struct framer f;
    const uint8_t *frame;
    size_t len;
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    /* HEPv2 over TCP, or plain text: refused from the first wrong byte */
    framer_feed(&f, (const uint8_t *)"G", 1);
    CU_ASSERT(framer_next(&f, &frame, &len) == FRAMER_BAD_MAGIC);
    framer_free(&f);

    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    framer_feed(&f, (const uint8_t *)"HEP2\x00\x10", 6);
    CU_ASSERT(framer_next(&f, &frame, &len) == FRAMER_BAD_MAGIC);
    framer_free(&f);

    /* a good frame, then garbage: the good one still comes out first */
    uint8_t buf[40];
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    make_frame(buf, 30, 'g');
    memcpy(buf + 30, "XEP3\x00\x08", 6);
    framer_feed(&f, buf, 36);
    CU_ASSERT(framer_next(&f, &frame, &len) == FRAMER_OK);
    CU_ASSERT(len == 30);
    CU_ASSERT(framer_next(&f, &frame, &len) == FRAMER_BAD_MAGIC);
    framer_free(&f);
}

static void test_length_below_header(void)
{
    struct framer f;
    const uint8_t *frame;
    size_t len = 0;
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    framer_feed(&f, (const uint8_t *)"HEP3\x00\x05", 6);
    CU_ASSERT(framer_next(&f, &frame, &len) == FRAMER_BAD_LENGTH);
    CU_ASSERT(len == 5);
    framer_free(&f);

    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    framer_feed(&f, (const uint8_t *)"HEP3\x00\x00", 6);
    CU_ASSERT(framer_next(&f, &frame, &len) == FRAMER_BAD_LENGTH);
    framer_free(&f);
}

static void test_length_above_max(void)
{
    struct framer f;
    const uint8_t *frame;
    size_t len = 0;
    uint8_t hdr[HEP3_HDR_LEN] = { 'H', 'E', 'P', '3', (TEST_MAX_FRAME + 1) >> 8, (TEST_MAX_FRAME + 1) & 0xff };
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    /* refused on the header alone: no need to buffer the body */
    framer_feed(&f, hdr, sizeof hdr);
    CU_ASSERT(framer_next(&f, &frame, &len) == FRAMER_BAD_LENGTH);
    CU_ASSERT(len == TEST_MAX_FRAME + 1);
    framer_free(&f);
}

static void test_exact_max(void)
{
    struct framer f;
    uint8_t buf[TEST_MAX_FRAME], fill[1];
    size_t lens[1];
    CU_ASSERT_FATAL(framer_init(&f, TEST_MAX_FRAME) == 0);
    make_frame(buf, TEST_MAX_FRAME, 'm');
    CU_ASSERT(framer_feed(&f, buf, sizeof buf) == sizeof buf);
    CU_ASSERT(drain_frames(&f, fill, lens, 1, NULL) == 1);
    CU_ASSERT(lens[0] == TEST_MAX_FRAME);
    framer_free(&f);

    /* the largest frame HEP3 can express, with a limit at the protocol maximum */
    static uint8_t big[HEP3_MAX_LEN];
    CU_ASSERT_FATAL(framer_init(&f, HEP3_MAX_LEN) == 0);
    make_frame(big, HEP3_MAX_LEN, 'M');
    CU_ASSERT(framer_feed(&f, big, sizeof big) == sizeof big);
    CU_ASSERT(drain_frames(&f, fill, lens, 1, NULL) == 1);
    CU_ASSERT(lens[0] == HEP3_MAX_LEN && fill[0] == 'M');
    framer_free(&f);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "one frame", test_one_frame },
        { "many frames in one chunk", test_many_frames_in_one_chunk },
        { "byte by byte", test_byte_by_byte },
        { "split header", test_split_header },
        { "frame split across reads", test_frame_split_across_reads },
        { "bad magic", test_bad_magic },
        { "length below header", test_length_below_header },
        { "length above max", test_length_above_max },
        { "exact max", test_exact_max },
        { NULL, NULL },
    };
    return unit_run("framer", tests);
}
