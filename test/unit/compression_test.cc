#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <percore/proto/detail/compression.h>
#include <percore/proto/detail/peer_message.h>
#include <percore/proto/echo.pb.h>

// Counts the bytes operator new hands out on this thread while enabled, to
// check what decompress() allocates (std::string allocates through it).
namespace {
thread_local bool t_counting = false;
thread_local long long t_live_bytes = 0;
thread_local long long t_peak_bytes = 0;

size_t usable_size(void* pointer) {
#if defined(__GLIBC__)
  return malloc_usable_size(pointer);
#else
  (void)pointer;
  return 0;
#endif
}
}  // namespace

void* operator new(size_t size) {
  void* pointer = std::malloc(size == 0 ? 1 : size);
  if (pointer == nullptr)
    throw std::bad_alloc();
  if (t_counting) {
    t_live_bytes += static_cast<long long>(usable_size(pointer));
    t_peak_bytes = std::max(t_peak_bytes, t_live_bytes);
  }
  return pointer;
}

void operator delete(void* pointer) noexcept {
  if (pointer != nullptr && t_counting)
    t_live_bytes -= static_cast<long long>(usable_size(pointer));
  std::free(pointer);
}

void operator delete(void* pointer, size_t) noexcept {
  operator delete(pointer);
}

namespace percore {
namespace {

// The most bytes held at once by what `run` allocates on this thread.
template <typename Run>
long long peak_allocated_bytes(Run run) {
  t_live_bytes = 0;
  t_peak_bytes = 0;
  t_counting = true;
  run();
  t_counting = false;
  return t_peak_bytes;
}

const CompressType kCompressedTypes[] = {CompressType::kSnappy, CompressType::kGzip,
                                         CompressType::kZlib};

std::string random_bytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& byte : bytes)
    byte = static_cast<char>(random());
  return bytes;
}

std::string name_of(CompressType type) {
  return std::string(compress_type_name(static_cast<int32_t>(type)));
}

TEST(CompressionTest, RoundTripsEveryTypeAndSize) {
  const std::vector<std::string> inputs = {
      std::string(), "x", std::string(100000, 'a'), random_bytes(1 << 20, 7),
      random_bytes(70000, 8) + std::string(70000, 'z')};
  for (CompressType type : kCompressedTypes) {
    for (const std::string& input : inputs) {
      SCOPED_TRACE(name_of(type) + ", " + std::to_string(input.size()) + " bytes");
      std::string compressed = "prefix";  // compress() appends.
      ASSERT_TRUE(compress(type, input, compressed));
      ASSERT_EQ(compressed.substr(0, 6), "prefix");
      std::string output;
      std::string error;
      ASSERT_EQ(decompress(type, std::string_view(compressed).substr(6), input.size(), output,
                           &error),
                DecompressStatus::kOk)
          << error;
      EXPECT_TRUE(output == input);
    }
  }
}

// The formats are brpc's: gzip starts with the gzip magic 1f 8b, zlib with
// a zlib header (78 9c at the default level), snappy with the varint length.
TEST(CompressionTest, WritesTheFormatsBrpcReads) {
  std::string gzip;
  std::string zlib;
  std::string snappy;
  ASSERT_TRUE(compress(CompressType::kGzip, "hello", gzip));
  ASSERT_TRUE(compress(CompressType::kZlib, "hello", zlib));
  ASSERT_TRUE(compress(CompressType::kSnappy, "hello", snappy));
  EXPECT_EQ(gzip.substr(0, 2), "\x1f\x8b");
  EXPECT_EQ(zlib.substr(0, 2), "\x78\x9c");
  EXPECT_EQ(snappy, std::string("\x05\x10hello", 7));
}

TEST(CompressionTest, CorruptInputIsRefusedWithAClearText) {
  const std::string input = "hello hello hello hello hello hello";
  for (CompressType type : kCompressedTypes) {
    SCOPED_TRACE(name_of(type));
    std::string good;
    ASSERT_TRUE(compress(type, input, good));
    std::string flipped = good;
    flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x55);
    flipped.back() = static_cast<char>(flipped.back() ^ 0x55);
    const std::vector<std::string> bad = {
        "this is not compressed at all",   // Garbage.
        good.substr(0, good.size() - 3),   // Truncated.
        flipped,                           // Damaged (checksum or structure).
    };
    for (const std::string& bytes : bad) {
      std::string output;
      std::string error;
      const DecompressStatus status = decompress(type, bytes, 1 << 20, output, &error);
      EXPECT_NE(status, DecompressStatus::kOk) << bytes.size() << " bytes decompressed";
      if (status == DecompressStatus::kCorrupt) {
        EXPECT_NE(error.find("does not decompress as " + name_of(type)), std::string::npos)
            << error;
      }
    }
  }
  // Bytes after the end of a gzip or zlib stream that are not another
  // stream are refused (protobuf's GzipInputStream fails on them too).
  for (CompressType type : {CompressType::kGzip, CompressType::kZlib}) {
    SCOPED_TRACE(name_of(type));
    std::string trailing;
    ASSERT_TRUE(compress(type, input, trailing));
    trailing += "junk";
    std::string output;
    std::string error;
    EXPECT_EQ(decompress(type, trailing, 1 << 20, output, &error), DecompressStatus::kCorrupt);
    EXPECT_NE(error.find("the 4 bytes after the end of the stream are not another stream"),
              std::string::npos)
        << error;
    // A second stream cut short.
    std::string second;
    ASSERT_TRUE(compress(type, input, second));
    std::string cut;
    ASSERT_TRUE(compress(type, input, cut));
    cut += second.substr(0, second.size() - 3);
    EXPECT_EQ(decompress(type, cut, 1 << 20, output, &error), DecompressStatus::kCorrupt);
    EXPECT_NE(error.find("not another stream (the stream is truncated)"), std::string::npos)
        << error;
  }
}

// brpc reads gzip and zlib with protobuf's GzipInputStream, which starts
// again after the end of a stream while input remains (RFC 1952 allows
// several gzip members). The limit counts all of them.
TEST(CompressionTest, ConcatenatedStreamsAreReadOnAsBrpcReadsThem) {
  for (CompressType type : {CompressType::kGzip, CompressType::kZlib}) {
    SCOPED_TRACE(name_of(type));
    std::string two;
    ASSERT_TRUE(compress(type, "hello ", two));
    ASSERT_TRUE(compress(type, "", two));
    ASSERT_TRUE(compress(type, "world", two));
    std::string output;
    std::string error;
    ASSERT_EQ(decompress(type, two, 1 << 20, output, &error), DecompressStatus::kOk) << error;
    EXPECT_EQ(output, "hello world");
    // Two streams of 300000 bytes (several inflate blocks each).
    const std::string half = random_bytes(300000, 9);
    std::string halves;
    ASSERT_TRUE(compress(type, half, halves));
    ASSERT_TRUE(compress(type, half, halves));
    ASSERT_EQ(decompress(type, halves, 600000, output, &error), DecompressStatus::kOk) << error;
    EXPECT_TRUE(output == half + half);
    EXPECT_EQ(decompress(type, halves, 599999, output, &error), DecompressStatus::kTooLarge);
    EXPECT_NE(error.find("decompresses to more than 599999 bytes"), std::string::npos) << error;
  }
}

// GzipInputStream makes an empty stream of empty input, so brpc parses an
// empty message; snappy refuses empty input (no length), in brpc too.
TEST(CompressionTest, EmptyInputIsAnEmptyMessageForGzipAndZlibNotSnappy) {
  for (CompressType type : {CompressType::kGzip, CompressType::kZlib}) {
    SCOPED_TRACE(name_of(type));
    std::string output = "stale";
    std::string error;
    EXPECT_EQ(decompress(type, "", 1 << 20, output, &error), DecompressStatus::kOk) << error;
    EXPECT_EQ(output, "");
  }
  std::string output;
  std::string error;
  EXPECT_EQ(decompress(CompressType::kSnappy, "", 1 << 20, output, &error),
            DecompressStatus::kCorrupt);
  EXPECT_NE(error.find("does not decompress as snappy"), std::string::npos) << error;
}

// A zlib header with FDICT set (78 bb) and a dictionary id: baidu_std has
// no field to name a dictionary, so the text says that, not "error 2".
TEST(CompressionTest, ZlibStreamNeedingAPresetDictionaryIsRefusedByName) {
  const std::string needs_dictionary("\x78\xbb\x12\x34\x56\x78\xcb\x48\xcd\xc9\xc9\x07\x00", 13);
  std::string output;
  std::string error;
  EXPECT_EQ(decompress(CompressType::kZlib, needs_dictionary, 1 << 20, output, &error),
            DecompressStatus::kCorrupt);
  EXPECT_EQ(error,
            "does not decompress as zlib: needs a preset dictionary, which baidu_std has no "
            "way to name");
}

TEST(CompressionTest, ExactlyTheLimitIsAcceptedOneByteMoreIsNot) {
  const std::string input(100000, 'q');
  for (CompressType type : kCompressedTypes) {
    SCOPED_TRACE(name_of(type));
    std::string compressed;
    ASSERT_TRUE(compress(type, input, compressed));
    std::string output;
    std::string error;
    EXPECT_EQ(decompress(type, compressed, input.size(), output, &error), DecompressStatus::kOk)
        << error;
    EXPECT_EQ(output.size(), input.size());
    EXPECT_EQ(decompress(type, compressed, input.size() - 1, output, &error),
              DecompressStatus::kTooLarge);
    EXPECT_NE(error.find("decompresses to more than 99999 bytes"), std::string::npos) << error;
  }
}

// A decompression bomb: 64 MiB of zeros in 64 KiB (gzip, zlib). With a 1 MiB
// limit, the output never grows past the limit (plus one byte).
TEST(CompressionTest, BombIsRefusedWithoutInflatingPastTheLimit) {
  const std::string zeros(64 << 20, '\0');
  constexpr size_t kLimit = 1 << 20;
  for (CompressType type : kCompressedTypes) {
    SCOPED_TRACE(name_of(type));
    std::string bomb;
    ASSERT_TRUE(compress(type, zeros, bomb));
    std::printf("%s bomb: %zu bytes inflate to %zu (ratio %.0f)\n", name_of(type).c_str(),
                bomb.size(), zeros.size(), static_cast<double>(zeros.size()) / bomb.size());
    std::string output;
    std::string error;
    EXPECT_EQ(decompress(type, bomb, kLimit, output, &error), DecompressStatus::kTooLarge);
    EXPECT_LE(output.capacity(), 2 * kLimit);
    EXPECT_NE(error.find("decompresses to more than 1048576 bytes"), std::string::npos) << error;
  }
}

// Inflate output goes into fixed blocks cut to the limit, so a bomb's
// output buffers never hold more than the limit plus one byte: no buffer
// being grown while its old copy is alive (that cost about 1.5 x the limit).
TEST(CompressionTest, BombNeverAllocatesMoreThanTheLimit) {
  const std::string zeros(64 << 20, '\0');
  constexpr size_t kLimit = 1 << 20;
  for (CompressType type : {CompressType::kGzip, CompressType::kZlib}) {
    SCOPED_TRACE(name_of(type));
    std::string bomb;
    ASSERT_TRUE(compress(type, zeros, bomb));
    std::string output;
    std::string error;
    DecompressStatus status = DecompressStatus::kOk;
    const long long peak = peak_allocated_bytes(
        [&] { status = decompress(type, bomb, kLimit, output, &error); });
    EXPECT_EQ(status, DecompressStatus::kTooLarge);
#if defined(__GLIBC__)
    // The limit + 1, and a little for the list of blocks and the text.
    EXPECT_LE(peak, static_cast<long long>(kLimit) + 16 * 1024);
    EXPECT_GE(peak, static_cast<long long>(kLimit));
#endif
    (void)peak;
  }
}

// Garbage announcing 64 MiB is refused as corrupt without allocating the
// 64 MiB (`out`, the caller's buffer, stays small).
TEST(CompressionTest, SnappyGarbageIsRefusedBeforeItsLengthIsAllocated) {
  const std::string garbage("\x80\x80\x80\x20\xff", 5);  // varint 64 MiB, then junk.
  std::string output;
  std::string error;
  const long long peak = peak_allocated_bytes([&] {
    EXPECT_EQ(decompress(CompressType::kSnappy, garbage, 128 << 20, output, &error),
              DecompressStatus::kCorrupt);
  });
  EXPECT_LT(output.capacity(), 4096u);
  EXPECT_NE(error.find("does not decompress as snappy: corrupt input"), std::string::npos)
      << error;
#if defined(__GLIBC__)
  EXPECT_LT(peak, 4096);
#endif
  (void)peak;
}

// A snappy stream that announces 4 GiB is refused from its header alone.
TEST(CompressionTest, SnappyAnnouncedLengthIsCheckedBeforeAllocating) {
  const std::string bomb("\xff\xff\xff\xff\x0f\x00", 6);  // varint 2^32 - 1, then junk.
  std::string output;
  std::string error;
  EXPECT_EQ(decompress(CompressType::kSnappy, bomb, 1 << 20, output, &error),
            DecompressStatus::kTooLarge);
  EXPECT_EQ(output.capacity() < 4096, true);
  EXPECT_NE(error.find("announces 4294967295"), std::string::npos) << error;
}

TEST(CompressionTest, ParserSaysWhichStepFailed) {
  PeerMessageParser parser;
  example::EchoRequest request;
  request.set_message("hello");
  std::string compressed;
  ASSERT_TRUE(serialize_compressed(request, CompressType::kZlib, compressed));
  example::EchoRequest parsed;
  std::string error;
  ASSERT_TRUE(parser.parse(compressed, CompressType::kZlib, 1 << 20, parsed, &error)) << error;
  EXPECT_EQ(parsed.message(), "hello");
  EXPECT_FALSE(parser.parse("garbage", CompressType::kGzip, 1 << 20, parsed, &error));
  EXPECT_EQ(error.rfind("(gzip) does not decompress as gzip", 0), 0u) << error;
  // Decompresses, but is not an EchoRequest (its required field is missing).
  std::string empty;
  ASSERT_TRUE(compress(CompressType::kSnappy, "", empty));
  EXPECT_FALSE(parser.parse(empty, CompressType::kSnappy, 1 << 20, parsed, &error));
  EXPECT_EQ(error.rfind("(snappy) misses required fields", 0), 0u) << error;
}

TEST(CompressionTest, NamesAndSupportedValues) {
  EXPECT_TRUE(is_supported_compress_type(0));
  EXPECT_TRUE(is_supported_compress_type(3));
  EXPECT_FALSE(is_supported_compress_type(4));
  EXPECT_FALSE(is_supported_compress_type(-1));
  EXPECT_EQ(compress_type_name(2), "gzip");
  EXPECT_EQ(compress_type_name(9), "unknown");
}

}  // namespace
}  // namespace percore
