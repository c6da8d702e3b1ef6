// The second independent verifier: the JDK's javax.xml.crypto plus the XAdES-BES checks of
// tests/support/jdk/XadesVerify.java (core validation of every ds:Signature with the key of
// its KeyInfo certificate, SignedProperties reference, Target, SigningTime, CertDigest,
// ClaimedRole).
#pragma once

#include <string>

namespace hbsd::test {

struct JdkResult {
    int status = -1;     // 0: every signature passed and there were `expected` of them
    std::string output;  // one line per signature: "ok <Id>" or "FAIL <Id>: why"
};

JdkResult jdk_verify(const std::string& xml, int expected);

}  // namespace hbsd::test
