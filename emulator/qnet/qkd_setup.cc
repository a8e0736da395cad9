#include "emulator/qnet/qkd_setup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

#ifdef QNET_HAVE_KME
#include "apps/qkd/kme/pki.h"
#endif

namespace qnet::launcher {
namespace {

namespace fs = std::filesystem;

// The value of an app parameter, matching hyphenated and underscored spellings.
const std::string* Param(const AppSpec& app, const std::string& underscored) {
  for (const auto& [name, value] : app.params) {
    if (absl::StrReplaceAll(name, {{"-", "_"}}) == underscored) return &value;
  }
  return nullptr;
}

bool ParsePort(const std::string& text, int* port) {
  return absl::SimpleAtoi(text, port) && *port >= 0 && *port <= 65535;
}

size_t QkdRank(const Topology& topology, size_t app_index) {
  size_t rank = 0;
  for (size_t i = 0; i < app_index; ++i) rank += topology.apps[i].kind == kQkdKind ? 1 : 0;
  return rank;
}

absl::Status WritePsk(const std::string& path) {
  std::string bytes(kQkdPskBytes, '\0');
  const int in = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (in < 0) return absl::InternalError(absl::StrCat("/dev/urandom: ", strerror(errno)));
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = read(in, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(in);
      return absl::InternalError("cannot read /dev/urandom");
    }
    got += static_cast<size_t>(n);
  }
  close(in);
  // O_EXCL: written once per app and run; never overwritten under a running end.
  const int out = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0)
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  size_t put = 0;
  while (put < bytes.size()) {
    const ssize_t n = write(out, bytes.data() + put, bytes.size() - put);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(out);
      return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
    }
    put += static_cast<size_t>(n);
  }
  if (close(out) != 0)
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  return absl::OkStatus();
}

}  // namespace

bool HasQkdApps(const Topology& topology) {
  for (const AppSpec& app : topology.apps)
    if (app.kind == kQkdKind) return true;
  return false;
}

KmePorts KmePortsOf(const Topology& topology, size_t app_index) {
  const AppSpec& app = topology.apps[app_index];
  const int base = kKmeHttpPortBase + 2 * static_cast<int>(QkdRank(topology, app_index));
  KmePorts ports{base, base + 1};
  int port;
  if (const std::string* v = Param(app, "kme_http_port"); v != nullptr && ParsePort(*v, &port))
    ports.http = port;
  if (const std::string* v = Param(app, "kme_https_port"); v != nullptr && ParsePort(*v, &port))
    ports.https = port;
  return ports;
}

absl::Status CheckQkdApps(const Topology& topology) {
  std::map<std::pair<std::string, int>, std::string> taken;  // (node, port) -> app
  for (size_t i = 0; i < topology.apps.size(); ++i) {
    const AppSpec& app = topology.apps[i];
    if (app.kind != kQkdKind) continue;
    for (const char* name : {"kme_http_port", "kme_https_port"}) {
      int port;
      if (const std::string* v = Param(app, name); v != nullptr && !ParsePort(*v, &port)) {
        return absl::InvalidArgumentError(
            absl::StrCat(topology.source, ":", app.line, ": app '", app.name,
                         "': ", absl::StrReplaceAll(name, {{"_", "-"}}),
                         " must be an integer in [0, 65535], got '", *v, "'"));
      }
    }
    const KmePorts ports = KmePortsOf(topology, i);
    if (ports.http != 0 && ports.http == ports.https) {
      return absl::InvalidArgumentError(absl::StrCat(topology.source, ":", app.line, ": app '",
                                                     app.name,
                                                     "': kme-http-port and kme-https-port are "
                                                     "both ",
                                                     ports.http));
    }
    for (const std::string& node : {app.node, app.peer}) {
      for (int port : {ports.http, ports.https}) {
        if (port == 0) continue;
        auto [it, fresh] = taken.emplace(std::make_pair(node, port), app.name);
        if (!fresh) {
          return absl::InvalidArgumentError(
              absl::StrCat(topology.source, ":", app.line, ": app '", app.name, "' and app '",
                           it->second, "' both serve a KME at node ", node, " on port ", port,
                           ": give one of them other kme-http-port / kme-https-port values"));
        }
      }
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> SaesAt(const Topology& topology, const std::string& node) {
  std::vector<std::string> saes;
  for (const SaeSpec& sae : topology.saes)
    if (sae.node == node) saes.push_back(sae.name);
  return saes;
}

std::string QkdPskPath(const std::string& out_dir, const std::string& app) {
  return absl::StrCat(out_dir, "/qkd/", app, ".psk");
}

std::vector<std::string> QkdFlags(const Topology& topology, size_t app_index,
                                  const std::string& role, const std::string& out_dir,
                                  const AddressOf& address_of) {
  const AppSpec& app = topology.apps[app_index];
  const bool alice = role == "a";
  const std::string& own = alice ? app.node : app.peer;
  const std::string& other = alice ? app.peer : app.node;
  const KmePorts ports = KmePortsOf(topology, app_index);
  std::vector<std::string> flags;
  if (!alice) flags.push_back(absl::StrCat("--peer=", other));  // Alice has --peer already
  for (std::string& flag : std::vector<std::string>{
           absl::StrCat("--session=", app.name),
           absl::StrCat("--node=", own),
           absl::StrCat("--psk_file=", QkdPskPath(out_dir, app.name)),
           absl::StrCat("--key_file=", out_dir, "/qkd/", app.name, ".", role, ".key"),
           absl::StrCat("--kme_address=", address_of ? address_of(own) : std::string("127.0.0.1")),
           absl::StrCat("--kme_http_port=", ports.http),
           absl::StrCat("--kme_https_port=", ports.https),
           absl::StrCat("--pki_dir=", out_dir, "/pki"),
           absl::StrCat("--saes=", absl::StrJoin(SaesAt(topology, own), ",")),
           absl::StrCat("--peer_saes=", absl::StrJoin(SaesAt(topology, other), ",")),
       }) {
    flags.push_back(std::move(flag));
  }
  return flags;
}

absl::Status PrepareQkd(const Topology& topology, const std::string& out_dir,
                        const AddressOf& address_of) {
  if (!HasQkdApps(topology)) return absl::OkStatus();
  std::error_code ec;
  fs::create_directories(out_dir + "/qkd", ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", out_dir, "/qkd: ", ec.message()));
  std::vector<std::string> kme_nodes;
  std::set<std::string> seen;
  for (const AppSpec& app : topology.apps) {
    if (app.kind != kQkdKind) continue;
    if (absl::Status s = WritePsk(QkdPskPath(out_dir, app.name)); !s.ok()) return s;
    for (const std::string& node : {app.node, app.peer})
      if (seen.insert(node).second) kme_nodes.push_back(node);
  }
#ifdef QNET_HAVE_KME
  qkd::PkiRequest request;
  request.dir = out_dir + "/pki";
  for (const std::string& node : kme_nodes) request.kmes.emplace_back(node, address_of(node));
  for (const SaeSpec& sae : topology.saes) request.saes.push_back(sae.name);
  if (absl::Status s = qkd::WritePki(request); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("cannot write the run's PKI into ", request.dir, ": ", s.message()));
  }
  return absl::OkStatus();
#else
  (void)address_of;
  return absl::UnimplementedError(
      "this qnet was built without the KME library (apps/qkd/kme), so it cannot write the PKI "
      "of a QKD run");
#endif
}

std::vector<KeyFetchCommand> KeyFetchCommands(const Topology& topology, const std::string& out_dir,
                                              const AddressOf& address_of) {
  std::vector<KeyFetchCommand> commands;
  for (size_t i = 0; i < topology.apps.size(); ++i) {
    const AppSpec& app = topology.apps[i];
    if (app.kind != kQkdKind) continue;
    const std::vector<std::string> masters = SaesAt(topology, app.node);
    const std::vector<std::string> slaves = SaesAt(topology, app.peer);
    if (masters.empty() || slaves.empty()) {
      commands.push_back({"", absl::StrCat("# qkd app ", app.name, ": no <sae> at ",
                                           masters.empty() ? app.node : app.peer,
                                           ", so no SAE can fetch its keys")});
      continue;
    }
    const std::string& master = masters.front();
    const std::string& slave = slaves.front();
    const KmePorts ports = KmePortsOf(topology, i);
    const std::string a = address_of(app.node), b = address_of(app.peer);
    commands.push_back({"", absl::StrCat("# qkd app ", app.name, ": master SAE ", master, " at ",
                                         app.node, ", slave SAE ", slave, " at ", app.peer,
                                         "; put a key_ID from enc_keys into dec_keys")});
    if (ports.https != 0) {
      const std::string pki = out_dir + "/pki";
      auto cert = [&pki](const std::string& sae) {
        return absl::StrCat("--cacert ", pki, "/ca.pem --cert ", pki, "/sae-", sae, ".pem --key ",
                            pki, "/sae-", sae, ".key");
      };
      commands.push_back({app.node, absl::StrCat("curl ", cert(master), " https://", a, ":",
                                                 ports.https, "/api/v1/keys/", slave, "/status")});
      commands.push_back(
          {app.node, absl::StrCat("curl ", cert(master), " https://", a, ":", ports.https,
                                  "/api/v1/keys/", slave, "/enc_keys")});
      commands.push_back(
          {app.peer, absl::StrCat("curl ", cert(slave), " 'https://", b, ":", ports.https,
                                  "/api/v1/keys/", master, "/dec_keys?key_ID=KEY_ID'")});
    }
    if (ports.http != 0) {
      commands.push_back({app.node, absl::StrCat("curl -H 'X-SAE-ID: ", master, "' http://", a, ":",
                                                 ports.http, "/api/v1/keys/", slave, "/enc_keys")});
      commands.push_back(
          {app.peer, absl::StrCat("curl -H 'X-SAE-ID: ", slave, "' 'http://", b, ":", ports.http,
                                  "/api/v1/keys/", master, "/dec_keys?key_ID=KEY_ID'")});
    }
  }
  return commands;
}

std::string FormatKeyFetchCommands(
    const std::vector<KeyFetchCommand>& commands,
    const std::function<std::string(const std::string&)>& prefix_of) {
  std::string text;
  for (const KeyFetchCommand& c : commands) {
    const std::string prefix = !c.node.empty() && prefix_of ? prefix_of(c.node) : "";
    absl::StrAppend(&text, "  ", prefix, c.command, "\n");
  }
  return text;
}

}  // namespace qnet::launcher
