package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the certificate material of one test cluster, all written under dir.
type pki struct {
	dir string

	caCert *x509.Certificate
	caKey  crypto.Signer

	CACertFile        string
	CAKeyFile         string
	ServingCertFile   string
	ServingKeyFile    string
	AdminCertFile     string
	AdminKeyFile      string
	ServiceAccountKey string
	ServiceAccountPub string
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func writePEM(path, blockType string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), mode)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// newPKI creates a CA, the API server's serving certificate, an admin client certificate
// (system:masters) and the service-account signing key pair. Everything is valid for one day.
func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		dir:               dir,
		CACertFile:        filepath.Join(dir, "ca.crt"),
		CAKeyFile:         filepath.Join(dir, "ca.key"),
		ServingCertFile:   filepath.Join(dir, "apiserver.crt"),
		ServingKeyFile:    filepath.Join(dir, "apiserver.key"),
		AdminCertFile:     filepath.Join(dir, "admin.crt"),
		AdminKeyFile:      filepath.Join(dir, "admin.key"),
		ServiceAccountKey: filepath.Join(dir, "sa.key"),
		ServiceAccountPub: filepath.Join(dir, "sa.pub"),
	}
	now := time.Now()

	caKey, err := newKey()
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tessera-e2e-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	if p.caCert, err = x509.ParseCertificate(caDER); err != nil {
		return nil, err
	}
	p.caKey = caKey
	if err := writePEM(p.CACertFile, "CERTIFICATE", caDER, 0o644); err != nil {
		return nil, err
	}
	if err := writeKey(p.CAKeyFile, caKey); err != nil {
		return nil, err
	}

	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if err := p.issue(serving, p.ServingCertFile, p.ServingKeyFile); err != nil {
		return nil, fmt.Errorf("create API server certificate: %w", err)
	}
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "tessera-e2e-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := p.issue(admin, p.AdminCertFile, p.AdminKeyFile); err != nil {
		return nil, fmt.Errorf("create admin certificate: %w", err)
	}

	saKey, err := newKey()
	if err != nil {
		return nil, err
	}
	if err := writeKey(p.ServiceAccountKey, saKey); err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := writePEM(p.ServiceAccountPub, "PUBLIC KEY", pubDER, 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// issue signs template with the CA and writes the certificate and a fresh key.
func (p *pki) issue(template *x509.Certificate, certFile, keyFile string) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	if template.SerialNumber, err = serialNumber(); err != nil {
		return err
	}
	template.NotBefore = time.Now().Add(-time.Hour)
	template.NotAfter = time.Now().Add(24 * time.Hour)
	template.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, template, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return err
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writeKey(keyFile, key)
}

// writeKubeconfig writes a kubeconfig with the CA, the admin client certificate and key
// embedded, so that the file alone is enough to reach the cluster.
func (p *pki) writeKubeconfig(path, server string) error {
	read := func(f string) (string, error) {
		b, err := os.ReadFile(f)
		return base64.StdEncoding.EncodeToString(b), err
	}
	ca, err := read(p.CACertFile)
	if err != nil {
		return err
	}
	cert, err := read(p.AdminCertFile)
	if err != nil {
		return err
	}
	key, err := read(p.AdminKeyFile)
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: tessera-e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: tessera-e2e-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: tessera-e2e
  context:
    cluster: tessera-e2e
    user: tessera-e2e-admin
current-context: tessera-e2e
`, server, ca, cert, key)
	return os.WriteFile(path, []byte(config), 0o600)
}
