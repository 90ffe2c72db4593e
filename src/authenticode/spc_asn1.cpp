// OpenSSL ASN.1 templates of the Authenticode structures declared in spc_asn1.hpp (Microsoft,
// "Windows Authenticode Portable Executable Signature Format", "Authenticode-Specific
// Structures"). The templates are constant data: OpenSSL does all encoding and parsing.
#include "authenticode/spc_asn1.hpp"

namespace tsign::authenticode::asn1 {

ASN1_CHOICE(SpcString) =
    {
        ASN1_IMP_OPT(SpcString, value.unicode, ASN1_BMPSTRING, 0),
        ASN1_IMP_OPT(SpcString, value.ascii, ASN1_IA5STRING, 1),
} ASN1_CHOICE_END(SpcString) IMPLEMENT_ASN1_FUNCTIONS(SpcString)

        ASN1_SEQUENCE(SpcSerializedObject) =
            {
                ASN1_SIMPLE(SpcSerializedObject, classId, ASN1_OCTET_STRING),
                ASN1_SIMPLE(SpcSerializedObject, serializedData, ASN1_OCTET_STRING),
} ASN1_SEQUENCE_END(SpcSerializedObject) IMPLEMENT_ASN1_FUNCTIONS(SpcSerializedObject)

    // `file` is [2] EXPLICIT because SpcString is itself a CHOICE (a CHOICE cannot be tagged
    // implicitly).
    ASN1_CHOICE(SpcLink) =
        {
            ASN1_IMP_OPT(SpcLink, value.url, ASN1_IA5STRING, 0),
            ASN1_IMP_OPT(SpcLink, value.moniker, SpcSerializedObject, 1),
            ASN1_EXP_OPT(SpcLink, value.file, SpcString, 2),
} ASN1_CHOICE_END(SpcLink) IMPLEMENT_ASN1_FUNCTIONS(SpcLink)

            ASN1_SEQUENCE(SpcPeImageData) =
                {
                    ASN1_SIMPLE(SpcPeImageData, flags, ASN1_BIT_STRING),
                    ASN1_EXP_OPT(SpcPeImageData, file, SpcLink, 0),
} ASN1_SEQUENCE_END(SpcPeImageData) IMPLEMENT_ASN1_FUNCTIONS(SpcPeImageData)

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
                                                ASN1_SIMPLE(SpcIndirectDataContent, messageDigest,
                                                            SpcDigestInfo),
} ASN1_SEQUENCE_END(SpcIndirectDataContent) IMPLEMENT_ASN1_FUNCTIONS(SpcIndirectDataContent)

                                                ASN1_SEQUENCE(SpcSpOpusInfo) =
                                                    {
                                                        ASN1_EXP_OPT(SpcSpOpusInfo, programName,
                                                                     SpcString, 0),
                                                        ASN1_EXP_OPT(SpcSpOpusInfo, moreInfo,
                                                                     SpcLink, 1),
} ASN1_SEQUENCE_END(SpcSpOpusInfo) IMPLEMENT_ASN1_FUNCTIONS(SpcSpOpusInfo)

                                                        ASN1_ITEM_TEMPLATE(SpcStatementType) =
                                                            ASN1_EX_TEMPLATE_TYPE(
                                                                ASN1_TFLG_SEQUENCE_OF, 0,
                                                                SpcStatementType, ASN1_OBJECT)
                                                                ASN1_ITEM_TEMPLATE_END(
                                                                    SpcStatementType)

}  // namespace tsign::authenticode::asn1
