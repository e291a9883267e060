#include <percore/proto/error_code.h>

#include <percore/proto/detail/error_code_counters.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <set>
#include <string>

namespace percore {
namespace {

// The numbers are a wire contract with brpc peers: any change breaks
// interoperability, so each one is pinned here.
TEST(ErrorCodeTest, NumbersAreBrpcs) {
  EXPECT_EQ(to_int(ErrorCode::kOk), 0);
  EXPECT_EQ(to_int(ErrorCode::kDeadlock), 35);
  EXPECT_EQ(to_int(ErrorCode::kHostDown), 112);
  EXPECT_EQ(to_int(ErrorCode::kCanceled), 125);
  EXPECT_EQ(to_int(ErrorCode::kNoService), 1001);
  EXPECT_EQ(to_int(ErrorCode::kNoMethod), 1002);
  EXPECT_EQ(to_int(ErrorCode::kBadRequest), 1003);
  EXPECT_EQ(to_int(ErrorCode::kUnauthorized), 1004);
  EXPECT_EQ(to_int(ErrorCode::kTimedOut), 1008);
  EXPECT_EQ(to_int(ErrorCode::kBrokenConnection), 1009);
  EXPECT_EQ(to_int(ErrorCode::kOvercrowded), 1011);
  EXPECT_EQ(to_int(ErrorCode::kInternal), 2001);
  EXPECT_EQ(to_int(ErrorCode::kBadResponse), 2002);
  EXPECT_EQ(to_int(ErrorCode::kServerStopping), 2003);
  EXPECT_EQ(to_int(ErrorCode::kServerLimitReached), 2004);
}

TEST(ErrorCodeTest, AllErrorCodesListsEachCodeOnce) {
  EXPECT_EQ(kErrorCodeCount, 16);
  std::set<int32_t> numbers;
  for (ErrorCode code : kAllErrorCodes)
    numbers.insert(to_int(code));
  EXPECT_EQ(numbers.size(), static_cast<size_t>(kErrorCodeCount));
}

TEST(ErrorCodeTest, IndexIsThePositionInAllErrorCodes) {
  for (int i = 0; i < kErrorCodeCount; ++i) {
    EXPECT_EQ(error_code_index(to_int(kAllErrorCodes[i])), i);
  }
}

TEST(ErrorCodeTest, UnknownNumbersHaveNoIndex) {
  // A peer may send any int32; neighbours of real codes must not alias them.
  for (int32_t number :
       {-1, 1, 34, 36, 111, 113, 1000, 1005, 1010, 1012, 1015, 1017, 2000, 2005, std::numeric_limits<int32_t>::min(),
        std::numeric_limits<int32_t>::max()}) {
    EXPECT_EQ(error_code_index(number), -1) << number;
  }
}

TEST(ErrorCodeTest, NamesAreBrpcs) {
  EXPECT_EQ(error_code_name(0), "OK");
  EXPECT_EQ(error_code_name(35), "EDEADLK");
  EXPECT_EQ(error_code_name(112), "EHOSTDOWN");
  EXPECT_EQ(error_code_name(125), "ECANCELED");
  EXPECT_EQ(error_code_name(1001), "ENOSERVICE");
  EXPECT_EQ(error_code_name(1002), "ENOMETHOD");
  EXPECT_EQ(error_code_name(1003), "EREQUEST");
  EXPECT_EQ(error_code_name(1004), "ERPCAUTH");
  EXPECT_EQ(error_code_name(1008), "ERPCTIMEDOUT");
  EXPECT_EQ(error_code_name(1009), "EFAILEDSOCKET");
  EXPECT_EQ(error_code_name(1011), "EOVERCROWDED");
  EXPECT_EQ(error_code_name(1016), "ESSL");
  EXPECT_EQ(error_code_name(2001), "EINTERNAL");
  EXPECT_EQ(error_code_name(2002), "ERESPONSE");
  EXPECT_EQ(error_code_name(2003), "ELOGOFF");
  EXPECT_EQ(error_code_name(2004), "ELIMIT");
}

// Codes an application chose (ServerController::SetFailed(code, ...)) are
// named as such, not "Unknown"; brpc's codes percore does not define say so.
TEST(ErrorCodeTest, OtherNumbersAreNamedApplicationOrBrpcErrors) {
  EXPECT_EQ(error_code_name(5000), "application error 5000");
  EXPECT_EQ(error_code_name(-1), "application error -1");
  EXPECT_EQ(error_code_name(22), "application error 22");
  EXPECT_EQ(error_code_name(3000), "application error 3000");
  EXPECT_EQ(error_code_name(1005), "brpc error 1005");
  EXPECT_EQ(error_code_name(2999), "brpc error 2999");
  EXPECT_EQ(error_code_name(std::numeric_limits<int32_t>::min()),
            "application error -2147483648");
}

TEST(ErrorCodeTest, EveryCodeHasItsOwnDescription) {
  std::set<std::string> descriptions;
  for (ErrorCode code : kAllErrorCodes) {
    const std::string_view description = error_code_description(to_int(code));
    EXPECT_FALSE(description.empty()) << to_int(code);
    descriptions.emplace(description);
  }
  EXPECT_EQ(descriptions.size(), static_cast<size_t>(kErrorCodeCount));
  EXPECT_EQ(error_code_description(to_int(ErrorCode::kTimedOut)), "timed out");
}

TEST(ErrorCodeTest, UnknownNumbersHaveAGenericDescription) {
  EXPECT_EQ(error_code_description(1005), "unknown error");
  EXPECT_EQ(error_code_description(-7), "unknown error");
}

TEST(ErrorCodeCountersTest, ApplicationCodesAreCountedByNumberUpToTheSlotsThenUnderMinusOne) {
  ErrorCodeCounters counters;
  counters.add(0);
  counters.add(to_int(ErrorCode::kTimedOut));
  for (int i = 0; i < 3; ++i)
    counters.add(5000);
  counters.add(-1);  // A real code, apart from the overflow.
  // 5000 and -1 hold two slots; fill the rest, then overflow by 5.
  for (int code = 6000; code < 6000 + ErrorCodeCounters::kOtherCodeSlots - 2 + 5; ++code)
    counters.add(code);
  const std::map<int32_t, uint64_t> counts = counters.snapshot();
  EXPECT_EQ(counts.at(0), 1u);
  EXPECT_EQ(counts.at(to_int(ErrorCode::kTimedOut)), 1u);
  EXPECT_EQ(counts.at(5000), 3u);
  EXPECT_EQ(counts.at(-1), 1u);
  EXPECT_EQ(counts.at(6000), 1u);
  EXPECT_EQ(counts.count(6000 + ErrorCodeCounters::kOtherCodeSlots - 2), 0u);
  EXPECT_EQ(counts.at(kOtherErrorCodes), 5u);
  EXPECT_EQ(counters.total(), 2u + 3u + 1u + ErrorCodeCounters::kOtherCodeSlots - 2 + 5);
}

}  // namespace
}  // namespace percore
