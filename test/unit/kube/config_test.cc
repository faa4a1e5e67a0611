// kubeconfig and in-cluster configuration: every supported entry, and a clear error for each
// broken or unsupported one.

#include "tessera/kube/config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace tessera::kube {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("kubeconfig-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  fs::path dir_;
};

std::string Kubeconfig(const std::string& cluster, const std::string& user) {
  return "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"
         "contexts:\n- name: ctx\n  context: {cluster: c, user: u, namespace: team-a}\n"
         "- name: other\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster:\n" +
         cluster + "users:\n- name: u\n  user:\n" + user;
}

TEST_F(ConfigTest, EmbeddedCertificatesAreDecodedInMemory) {
  const std::string path = Write(
      "config", Kubeconfig("    server: https://127.0.0.1:6443/\n    certificate-authority-data: " +
                               absl::Base64Escape("CA PEM") + "\n",
                           "    client-certificate-data: " + absl::Base64Escape("CERT PEM") +
                               "\n    client-key-data: " + absl::Base64Escape("KEY PEM") + "\n"));
  absl::StatusOr<Config> c = LoadKubeconfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://127.0.0.1:6443");
  EXPECT_EQ(c->ca_pem, "CA PEM");
  EXPECT_EQ(c->client_cert_pem, "CERT PEM");
  EXPECT_EQ(c->client_key_pem, "KEY PEM");
  EXPECT_EQ(c->namespace_, "team-a");
  EXPECT_EQ(c->token, nullptr);
  EXPECT_NE(c->source.find("(context ctx)"), std::string::npos);
  // Another context: default namespace.
  EXPECT_EQ(LoadKubeconfig(path, "other")->namespace_, "default");
}

TEST_F(ConfigTest, FilesAreRelativeToTheKubeconfigAndTokenFilesAreReRead) {
  Write("ca.crt", "CA FROM FILE");
  const std::string token = Write("token", "first-token\n");
  const std::string path =
      Write("config", Kubeconfig("    server: https://h:6443\n    certificate-authority: ca.crt\n"
                                 "    tls-server-name: kubernetes\n",
                                 "    tokenFile: token\n"));
  absl::StatusOr<Config> c = LoadKubeconfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ca_pem, "CA FROM FILE");
  EXPECT_EQ(c->tls_server_name, "kubernetes");
  ASSERT_NE(c->token, nullptr);
  EXPECT_EQ(c->token->Token(), "first-token");
  Write("token", "rotated-token\n");
  EXPECT_EQ(c->token->Token(), "first-token");  // re-read at most once a minute...
  c->token->Invalidate();                       // ...or after a 401
  EXPECT_EQ(c->token->Token(), "rotated-token");
}

TEST_F(ConfigTest, StaticTokenAndInsecure) {
  const std::string path =
      Write("config", Kubeconfig("    server: https://h:6443\n    insecure-skip-tls-verify: true\n",
                                 "    token: abc\n"));
  absl::StatusOr<Config> c = LoadKubeconfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->token->Token(), "abc");
}

TEST_F(ConfigTest, EachBrokenOrUnsupportedEntryIsNamed) {
  struct Case {
    std::string cluster, user, error;
  };
  const std::vector<Case> cases = {
      {"    server: https://h\n", "    exec: {command: aws}\n",
       "users[u].user.exec: exec credential plugins are not supported"},
      {"    server: https://h\n", "    auth-provider: {name: gcp}\n",
       "users[u].user.auth-provider"},
      {"    server: https://h\n", "    username: a\n    password: b\n",
       "users[u].user.username is not supported"},
      {"    server: https://h\n", "    client-certificate-data: Q0VSVA==\n",
       "client-certificate and client-key must be set together"},
      {"    server: https://h\n", "    client-key-data: '***'\n",
       "client-key-data is not valid base64"},
      {"    server: https://h\n", "    tokenFile: /nonexistent/token\n",
       "tokenFile: cannot read /nonexistent/token"},
      {"    server: https://h\n    certificate-authority: missing.crt\n", "    token: x\n",
       "clusters[c].cluster.certificate-authority: cannot read"},
      {"    server: ftp://h\n", "    token: x\n", "server \"ftp://h\" is not an http(s) URL"},
      {"    insecure-skip-tls-verify: true\n", "    token: x\n",
       "clusters[c].cluster.server is not set"},
      {"    server: https://h\n    insecure-skip-tls-verify: maybe\n", "    token: x\n",
       "insecure-skip-tls-verify is not a boolean"},
      {"    server: https://h\n    proxy-url: http://proxy\n", "    token: x\n",
       "proxy-url is not supported"},
  };
  for (const Case& c : cases) {
    const std::string path = Write("config", Kubeconfig(c.cluster, c.user));
    absl::StatusOr<Config> config = LoadKubeconfig(path);
    ASSERT_FALSE(config.ok()) << c.error;
    EXPECT_NE(config.status().message().find(c.error), std::string::npos) << config.status();
    EXPECT_NE(config.status().message().find(path), std::string::npos) << config.status();
  }
  EXPECT_NE(LoadKubeconfig(Write("config", Kubeconfig("    server: https://h\n", "    token: x\n")),
                           "nope")
                .status()
                .message()
                .find("no entry \"nope\" in contexts"),
            std::string::npos);
  EXPECT_NE(LoadKubeconfig(Write("config", "{a: [}")).status().message().find("config"),
            std::string::npos);
  EXPECT_EQ(LoadKubeconfig((dir_ / "absent").string()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ConfigTest, InClusterUsesTheServiceAccountFiles) {
  Write("ca.crt", "CLUSTER CA");
  Write("token", "sa-token\n");
  Write("namespace", "tessera-system\n");
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  absl::StatusOr<Config> c = InClusterConfig(dir_.string());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://[fd00::1]:443");
  EXPECT_EQ(c->ca_pem, "CLUSTER CA");
  EXPECT_EQ(c->token->Token(), "sa-token");
  EXPECT_EQ(c->namespace_, "tessera-system");
  unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_EQ(InClusterConfig(dir_.string()).status().code(), absl::StatusCode::kFailedPrecondition);
  unsetenv("KUBERNETES_SERVICE_PORT");
}

TEST_F(ConfigTest, FlagWinsOverTheEnvironment) {
  const std::string a = Write("a", Kubeconfig("    server: https://a:1\n", "    token: x\n"));
  const std::string b = Write("b", Kubeconfig("    server: https://b:1\n", "    token: x\n"));
  setenv("KUBECONFIG", (b + ":" + a).c_str(), 1);
  EXPECT_EQ(ResolveConfig("")->server, "https://b:1");
  EXPECT_EQ(ResolveConfig(a)->server, "https://a:1");
  unsetenv("KUBECONFIG");
}

}  // namespace
}  // namespace tessera::kube
