// The second independent verifier (DESIGN.md, Testing): the JDK's own XML-DSig implementation
// (javax.xml.crypto, Apache Santuario inside the JDK: its own parser, C14N, digests and
// signature code) checks every ds:Signature of a record, and the XAdES-BES properties the
// profile requires are checked against the certificate that signature carries:
//  - core validation: every Reference digest and the SignatureValue, with the key of the
//    certificate in KeyInfo, with secure validation on;
//  - one Reference of Type http://uri.etsi.org/01903#SignedProperties, to the signature's own
//    SignedProperties (Id = signature Id + "-SP"), inside QualifyingProperties whose Target is
//    "#" + the signature's Id;
//  - SigningTime is an xs:dateTime; SigningCertificateV2/Cert/CertDigest is SHA-256 over the
//    DER of the KeyInfo certificate; a ClaimedRole is present.
// Usage: java -cp DIR XadesVerify FILE [EXPECTED_COUNT]
// Prints "ok <Id>" or "FAIL <Id>: why" per signature; exit 0 only when every signature passes
// (and there are EXPECTED_COUNT of them), 1 otherwise, 2 on bad usage or an unreadable file.
import java.io.ByteArrayInputStream;
import java.io.File;
import java.security.MessageDigest;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import javax.xml.XMLConstants;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.XMLSignature;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMValidateContext;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

public final class XadesVerify {
    static final String DS = XMLSignature.XMLNS;
    static final String XADES = "http://uri.etsi.org/01903/v1.3.2#";
    static final String SP_TYPE = "http://uri.etsi.org/01903#SignedProperties";

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: XadesVerify FILE [EXPECTED_COUNT]");
            System.exit(2);
        }
        DocumentBuilderFactory dbf = DocumentBuilderFactory.newInstance();
        dbf.setNamespaceAware(true);
        // As hbsd: no DTD, no entities, nothing from the network.
        dbf.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        dbf.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        dbf.setExpandEntityReferences(false);
        Document doc;
        try {
            doc = dbf.newDocumentBuilder().parse(new File(args[0]));
        } catch (Exception e) {
            System.err.println("cannot read " + args[0] + ": " + e);
            System.exit(2);
            return;
        }
        // Records carry no DTD: the Id attributes are declared here, as for xmlsec1 --id-attr.
        NodeList all = doc.getElementsByTagName("*");
        for (int i = 0; i < all.getLength(); ++i) {
            Element e = (Element) all.item(i);
            if (e.hasAttribute("Id")) e.setIdAttribute("Id", true);
        }
        XMLSignatureFactory factory = XMLSignatureFactory.getInstance("DOM");
        NodeList sigs = doc.getElementsByTagNameNS(DS, "Signature");
        int failed = 0;
        for (int i = 0; i < sigs.getLength(); ++i) {
            Element sig = (Element) sigs.item(i);
            String id = sig.getAttribute("Id");
            String why = check(factory, sig, id);
            if (why == null) {
                System.out.println("ok " + id);
            } else {
                System.out.println("FAIL " + id + ": " + why);
                ++failed;
            }
        }
        if (args.length == 2 && sigs.getLength() != Integer.parseInt(args[1])) {
            System.out.println("FAIL: " + sigs.getLength() + " signatures, expected " + args[1]);
            ++failed;
        }
        System.exit(failed == 0 ? 0 : 1);
    }

    static Element only(Element parent, String ns, String name) {
        NodeList l = parent.getElementsByTagNameNS(ns, name);
        return l.getLength() == 1 ? (Element) l.item(0) : null;
    }

    static String check(XMLSignatureFactory factory, Element sig, String id) {
        try {
            Element certEl = only(sig, DS, "X509Certificate");
            if (certEl == null) return "not exactly one X509Certificate";
            byte[] der = Base64.getMimeDecoder().decode(certEl.getTextContent().trim());
            X509Certificate cert = (X509Certificate) CertificateFactory.getInstance("X.509")
                    .generateCertificate(new ByteArrayInputStream(der));

            DOMValidateContext ctx = new DOMValidateContext(cert.getPublicKey(), sig);
            ctx.setProperty("org.jcp.xml.dsig.secureValidation", Boolean.TRUE);
            XMLSignature signature = factory.unmarshalXMLSignature(ctx);
            if (!signature.validate(ctx)) {
                List<String> bad = new ArrayList<>();
                if (!signature.getSignatureValue().validate(ctx)) bad.add("SignatureValue");
                for (Object o : signature.getSignedInfo().getReferences()) {
                    Reference r = (Reference) o;
                    if (!r.validate(ctx)) bad.add("Reference " + r.getURI());
                }
                return "core validation failed: " + bad;
            }

            // XAdES-BES, as the profile has it.
            String spId = id + "-SP";
            int spRefs = 0;
            for (Object o : signature.getSignedInfo().getReferences()) {
                Reference r = (Reference) o;
                if (SP_TYPE.equals(r.getType())) {
                    if (!("#" + spId).equals(r.getURI())) return "SignedProperties Reference to " + r.getURI();
                    ++spRefs;
                }
            }
            if (spRefs != 1) return spRefs + " SignedProperties References";
            Element qp = only(sig, XADES, "QualifyingProperties");
            if (qp == null) return "not exactly one QualifyingProperties";
            if (!("#" + id).equals(qp.getAttribute("Target"))) return "Target " + qp.getAttribute("Target");
            Element sp = only(qp, XADES, "SignedProperties");
            if (sp == null || !spId.equals(sp.getAttribute("Id"))) return "SignedProperties Id";
            Element time = only(sp, XADES, "SigningTime");
            if (time == null) return "no SigningTime";
            OffsetDateTime.parse(time.getTextContent().trim());
            Element certDigest = only(sp, XADES, "CertDigest");
            if (certDigest == null) return "no SigningCertificateV2 CertDigest";
            Element method = only(certDigest, DS, "DigestMethod");
            if (method == null || !"http://www.w3.org/2001/04/xmlenc#sha256".equals(method.getAttribute("Algorithm")))
                return "CertDigest is not SHA-256";
            Element value = only(certDigest, DS, "DigestValue");
            byte[] expected = MessageDigest.getInstance("SHA-256").digest(cert.getEncoded());
            if (value == null || !MessageDigest.isEqual(expected, Base64.getMimeDecoder().decode(value.getTextContent().trim())))
                return "CertDigest does not match the KeyInfo certificate";
            Element role = only(sp, XADES, "ClaimedRole");
            if (role == null || role.getTextContent().trim().isEmpty()) return "no ClaimedRole";
            return null;
        } catch (Exception e) {
            return e.toString();
        }
    }
}
