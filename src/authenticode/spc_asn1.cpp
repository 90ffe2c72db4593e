// OpenSSL ASN.1 templates of the Authenticode structures declared in spc_asn1.hpp (Microsoft,
// "Windows Authenticode Portable Executable Signature Format", "Authenticode-Specific
// Structures"). The templates are constant data: OpenSSL does all encoding and parsing.
#include "authenticode/spc_asn1.hpp"

namespace tsign::authenticode::asn1 {

ASN1_SEQUENCE(SpcAttributeTypeAndOptionalValue) =
    {
        ASN1_SIMPLE(SpcAttributeTypeAndOptionalValue, type, ASN1_OBJECT),
        ASN1_OPT(SpcAttributeTypeAndOptionalValue, value, ASN1_ANY),
} ASN1_SEQUENCE_END(SpcAttributeTypeAndOptionalValue)
        IMPLEMENT_ASN1_FUNCTIONS(SpcAttributeTypeAndOptionalValue)

            ASN1_SEQUENCE(SpcDigestInfo) =
                {
                    ASN1_SIMPLE(SpcDigestInfo, digestAlgorithm, X509_ALGOR),
                    ASN1_SIMPLE(SpcDigestInfo, digest, ASN1_OCTET_STRING),
} ASN1_SEQUENCE_END(SpcDigestInfo) IMPLEMENT_ASN1_FUNCTIONS(SpcDigestInfo)

                    ASN1_SEQUENCE(SpcIndirectDataContent) =
                        {
                            ASN1_SIMPLE(SpcIndirectDataContent, data,
                                        SpcAttributeTypeAndOptionalValue),
                            ASN1_SIMPLE(SpcIndirectDataContent, messageDigest, SpcDigestInfo),
} ASN1_SEQUENCE_END(SpcIndirectDataContent) IMPLEMENT_ASN1_FUNCTIONS(SpcIndirectDataContent)

                            ASN1_SEQUENCE(SpcSpOpusInfo) =
                                {
                                    ASN1_EXP_OPT(SpcSpOpusInfo, programName, SpcString, 0),
                                    ASN1_EXP_OPT(SpcSpOpusInfo, moreInfo, SpcLink, 1),
} ASN1_SEQUENCE_END(SpcSpOpusInfo) IMPLEMENT_ASN1_FUNCTIONS(SpcSpOpusInfo)

                                    ASN1_ITEM_TEMPLATE(SpcStatementType) = ASN1_EX_TEMPLATE_TYPE(
                                        ASN1_TFLG_SEQUENCE_OF, 0, SpcStatementType, ASN1_OBJECT)
                                        ASN1_ITEM_TEMPLATE_END(SpcStatementType)

}  // namespace tsign::authenticode::asn1
