/*
 * fuzz_framer.c - libFuzzer harness for the HEP3 stream framer (src/framer.c).
 *
 * The input is a 4-byte header and a stream.  The header holds max_frame
 * and a seed for the split points (u16 each, big-endian); the stream is
 * what a TCP peer sends.  The input decides how the stream is cut:
 *   - seed < 0x8000: the stream is the rest of the input, cut into chunks
 *     of sizes drawn from the seed (xorshift32);
 *   - seed >= 0x8000: the rest of the input is records of one length byte
 *     L and L + 1 stream bytes (the last one cut short at the end), and
 *     each record is one chunk: every split point is in the input, where
 *     libFuzzer's mutations move it.
 * Each chunk goes in by framer_feed() or by framer_space() + memcpy() +
 * framer_commit() as ingest.c's reads do (a bit of the random state or of
 * the seed decides), and after every chunk the whole frames are drained.
 * Checked after every chunk:
 *   - every frame starts with "HEP3", is as long as its header says, has a
 *     length in [6, max_frame], and lies in the framer's buffer; the frames
 *     of one drain stay intact until the next chunk goes in;
 *   - the frames are the stream's bytes, in order, with no gap;
 *   - the framer never reports more than it was fed: the frames and
 *     framer_pending() add up to the bytes taken;
 *   - after NEED_MORE there is room for at least one more byte;
 *   - frames and status agree with a reference framer run over the bytes
 *     fed so far, however the stream was cut;
 *   - BAD_MAGIC and BAD_LENGTH (with its length) repeat on every later
 *     call, and no frame follows them (framer.h).
 * Any violation aborts.
 *
 * Build (fuzz/run does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -I src fuzz/fuzz_framer.c src/framer.c -o fuzz_framer
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "framer.h"
#include "hep.h"
#include "fuzz.h"

#define FUZZ_HDR_LEN            4u      /* max_frame, split seed */
#define FUZZ_MAX_FRAME_SMALL    4096u   /* max_frame = u16 % this ... */
#define FUZZ_LARGE_MARK         0xf000u /* ... unless the top nibble is all ones: */
#define FUZZ_LARGE_SPAN         0x0fffu /* then around HEP3_MAX_LEN (the buffer cap) */
#define FUZZ_MAX_FRAMES         (HEP3_MAX_LEN / HEP3_HDR_LEN + 1)   /* per drain */
#define FUZZ_BIG_CHUNK          8192u   /* larger than any small max_frame */
#define FUZZ_MID_CHUNK          256u
#define FUZZ_SMALL_CHUNK        8u
#define FUZZ_EXPLICIT_SPLITS    0x8000u /* seed bit: the split points are in the input */
#define FUZZ_MAX_INPUT          (1u << 20)  /* the longest stream of explicit records */


/* xorshift32: the split points, reproducible from the input. */
static uint32_t next_random(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* Mostly small chunks (split headers), some medium, a few that fill the buffer. */
static size_t chunk_size(uint32_t r)
{
    switch (r & 7) {
    case 7:
        return 1 + (r >> 3) % FUZZ_BIG_CHUNK;
    case 6:
    case 5:
        return 1 + (r >> 3) % FUZZ_MID_CHUNK;
    default:
        return 1 + (r >> 3) % FUZZ_SMALL_CHUNK;
    }
}

static size_t fuzz_max_frame(uint16_t raw)
{
    if ((raw & FUZZ_LARGE_MARK) == FUZZ_LARGE_MARK)
        return HEP3_MAX_LEN - FUZZ_LARGE_SPAN / 2 + (raw & FUZZ_LARGE_SPAN);
    return raw % FUZZ_MAX_FRAME_SMALL;
}

/*
 * The reference: the next frame of the stream s[0..len) at off, as the
 * framer documents it, with every byte at hand.
 */
static enum framer_status reference_next(const uint8_t *s, size_t len, size_t off, size_t max_frame,
                                         size_t *flen)
{
    size_t avail = len - off;
    size_t magic_len = strlen(HEP3_MAGIC);
    if (memcmp(s + off, HEP3_MAGIC, avail < magic_len ? avail : magic_len) != 0)
        return FRAMER_BAD_MAGIC;
    if (avail < HEP3_HDR_LEN)
        return FRAMER_NEED_MORE;
    *flen = bytes_get_be16(s + off + magic_len);
    if (*flen < HEP3_HDR_LEN || *flen > max_frame)
        return FRAMER_BAD_LENGTH;
    return avail < *flen ? FRAMER_NEED_MORE : FRAMER_OK;
}

struct run {
    struct framer f;
    const uint8_t *stream;
    size_t max_frame;
    size_t fed;                     /* stream bytes the framer took */
    size_t out;                     /* stream bytes handed out as frames */
    enum framer_status status;      /* of the last framer_next() */
    size_t bad_len;                 /* *len of a BAD_LENGTH */
    const uint8_t *frames[FUZZ_MAX_FRAMES];
    size_t lens[FUZZ_MAX_FRAMES];
};

static bool is_error(enum framer_status st)
{
    return st == FRAMER_BAD_MAGIC || st == FRAMER_BAD_LENGTH;
}

/* Takes every whole frame, then checks them all, as ingest.c's batch end sees them. */
static void drain(struct run *r)
{
    enum framer_status before = r->status;
    size_t before_len = r->bad_len;
    const uint8_t *frame = NULL;
    size_t len = 0, n = 0;
    enum framer_status st;

    while ((st = framer_next(&r->f, &frame, &len)) == FRAMER_OK) {
        CHECK(n < FUZZ_MAX_FRAMES);
        r->frames[n] = frame;
        r->lens[n] = len;
        n++;
    }
    CHECK(st == FRAMER_NEED_MORE || is_error(st));
    if (is_error(before)) {
        /* sticky: nothing more comes out, whatever was fed */
        CHECK(n == 0);
        CHECK(st == before);
        if (st == FRAMER_BAD_LENGTH)
            CHECK(len == before_len);
    }
    if (st == FRAMER_BAD_LENGTH)
        r->bad_len = len;
    r->status = st;

    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = r->frames[i];
        size_t flen = r->lens[i], ref_len = 0;
        CHECK(flen >= HEP3_HDR_LEN && flen <= r->max_frame);
        CHECK(p >= r->f.buf && flen <= r->f.cap && (size_t)(p - r->f.buf) <= r->f.cap - flen);
        CHECK(memcmp(p, HEP3_MAGIC, strlen(HEP3_MAGIC)) == 0);
        CHECK(bytes_get_be16(p + strlen(HEP3_MAGIC)) == flen);
        CHECK(flen <= r->fed - r->out);
        CHECK(memcmp(p, r->stream + r->out, flen) == 0);
        CHECK(reference_next(r->stream, r->fed, r->out, r->max_frame, &ref_len) == FRAMER_OK);
        CHECK(ref_len == flen);
        r->out += flen;
    }
    CHECK(framer_pending(&r->f) == r->fed - r->out);

    size_t ref_len = 0;
    CHECK(reference_next(r->stream, r->fed, r->out, r->max_frame, &ref_len) == st);
    if (st == FRAMER_BAD_LENGTH)
        CHECK(ref_len == r->bad_len);

    /* asking again changes nothing */
    CHECK(framer_next(&r->f, &frame, &len) == st);
    CHECK(framer_pending(&r->f) == r->fed - r->out);
}

/*
 * Explicit splits: the records' bytes, concatenated, into stream; each
 * record's length into sizes.  Returns the number of chunks.
 */
static size_t split_records(const uint8_t *in, size_t len, uint8_t *stream, size_t *stream_len,
                            size_t *sizes)
{
    size_t i = 0, n = 0, out = 0;
    while (i < len) {
        size_t want = (size_t)in[i++] + 1;
        if (want > len - i)
            want = len - i;
        if (want == 0)
            break;
        memcpy(stream + out, in + i, want);
        sizes[n++] = want;
        out += want;
        i += want;
    }
    *stream_len = out;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run r;        /* static: the frame arrays are large */
    static uint8_t explicit_stream[FUZZ_MAX_INPUT];
    static size_t explicit_sizes[FUZZ_MAX_INPUT];

    if (size < FUZZ_HDR_LEN || size - FUZZ_HDR_LEN > FUZZ_MAX_INPUT)
        return 0;
    r.max_frame = fuzz_max_frame(bytes_get_be16(data));
    uint16_t seed = bytes_get_be16(data + 2);
    uint32_t rng = (uint32_t)seed << 16 | 0x9e37u;     /* never 0 */
    bool explicit_splits = (seed & FUZZ_EXPLICIT_SPLITS) != 0;
    size_t len = size - FUZZ_HDR_LEN, nchunks = 0, chunk = 0;
    if (explicit_splits) {
        nchunks = split_records(data + FUZZ_HDR_LEN, len, explicit_stream, &len, explicit_sizes);
        r.stream = explicit_stream;
    } else {
        r.stream = data + FUZZ_HDR_LEN;
    }
    r.fed = r.out = 0;
    r.status = FRAMER_NEED_MORE;
    r.bad_len = 0;
    CHECK(framer_init(&r.f, r.max_frame) == 0);

    while (r.fed < len) {
        uint32_t x = next_random(&rng);
        size_t want;
        if (explicit_splits) {
            CHECK(chunk < nchunks);
            want = explicit_sizes[chunk++];
        } else {
            want = chunk_size(x);
        }
        if (want > len - r.fed)
            want = len - r.fed;
        size_t took;
        if (x & (1u << 31)) {
            took = framer_feed(&r.f, r.stream + r.fed, want);
        } else {
            size_t room;
            uint8_t *p = framer_space(&r.f, &room);
            if (r.status == FRAMER_NEED_MORE)
                CHECK(room > 0);
            took = want < room ? want : room;
            memcpy(p, r.stream + r.fed, took);
            framer_commit(&r.f, took);
        }
        CHECK(took <= want);
        if (r.status == FRAMER_NEED_MORE)
            CHECK(took > 0);
        r.fed += took;
        drain(&r);
        if (took == 0)
            break;              /* an error filled the buffer: nothing more goes in */
        if (explicit_splits && took < want) {
            /* the buffer was full: the rest of this record is the next chunk */
            chunk--;
            explicit_sizes[chunk] = want - took;
        }
    }
    if (!is_error(r.status))
        CHECK(r.fed == len);
    framer_free(&r.f);
    return 0;
}
