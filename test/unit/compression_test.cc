#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <percore/proto/detail/compression.h>
#include <percore/proto/detail/peer_message.h>
#include <percore/proto/echo.pb.h>

namespace percore {
namespace {

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
        std::string(),                     // Nothing at all.
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
  // Bytes after the end of a gzip or zlib stream are refused, as brpc does.
  for (CompressType type : {CompressType::kGzip, CompressType::kZlib}) {
    std::string trailing;
    ASSERT_TRUE(compress(type, input, trailing));
    trailing += "junk";
    std::string output;
    std::string error;
    EXPECT_EQ(decompress(type, trailing, 1 << 20, output, &error), DecompressStatus::kCorrupt);
    EXPECT_NE(error.find("4 bytes after the end of the stream"), std::string::npos) << error;
  }
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
