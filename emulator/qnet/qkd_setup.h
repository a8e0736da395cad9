// QKD sessions in real-process runs (issue 4; specs/topology.md TOPO-40..
// TOPO-45): what the launcher prepares for each <app kind="qkd"> before the
// app programs start, the qnet-qkd flags it adds, and where a client fetches
// the keys.
//
// Promises:
// - Every qkd app NAME gets a fresh pre-shared secret OUT/qkd/NAME.psk of
//   kQkdPskBytes random bytes (/dev/urandom), mode 0600, written once before
//   either end starts (TOPO-41); both ends read the same file.
// - When the topology has a qkd app, OUT/pki holds a throw-away PKI
//   (apps/qkd/kme/pki.h): one KME certificate per node that runs a qkd end,
//   for that node's address, and one client certificate per <sae> (TOPO-42).
// - The i-th qkd app (topology order, from 0) serves its KMEs on
//   kme-http-port (default kKmeHttpPortBase + 2 i) and kme-https-port
//   (default kKmeHttpPortBase + 2 i + 1) at both ends' node addresses; 0
//   turns a port off (TOPO-43). The same numbers serve both ends, since each
//   node has an address of its own (127.0.x.y locally, its host's IP in
//   Mininet).
// - KeyFetchCommands are curl command lines a user can paste (TOPO-44).
#ifndef QNET_EMULATOR_QNET_QKD_SETUP_H_
#define QNET_EMULATOR_QNET_QKD_SETUP_H_

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "stack/topology.h"

namespace qnet::launcher {

inline constexpr char kQkdKind[] = "qkd";
// Hash key (8 bytes) + one pad per direction of 32768 bits (design: default
// PSK size 2 x 32768 + 64 bits).
inline constexpr size_t kQkdPskBytes = 2 * 32768 / 8 + 8;
inline constexpr int kKmeHttpPortBase = 8000;

// Maps a node name to the address its processes use (and its KME binds).
using AddressOf = std::function<std::string(const std::string& node)>;

struct KmePorts {
  int http = 0;   // 0: none
  int https = 0;  // 0: none
};

// True when the topology has at least one <app kind="qkd">.
bool HasQkdApps(const Topology& topology);

// The KME ports of topology.apps[app_index] (a qkd app): its kme-http-port /
// kme-https-port parameters, else the defaults of its rank among qkd apps.
// Call CheckQkdApps first: a bad value yields the default here.
KmePorts KmePortsOf(const Topology& topology, size_t app_index);

// Refuses kme-http-port / kme-https-port values that are not integers in
// [0, 65535], and two qkd apps with an end at the same node on the same
// nonzero port (TOPO-43). The error names the file and line.
absl::Status CheckQkdApps(const Topology& topology);

// The SAEs (<sae name node>) at `node`, in file order.
std::vector<std::string> SaesAt(const Topology& topology, const std::string& node);

// OUT/qkd/NAME.psk.
std::string QkdPskPath(const std::string& out_dir, const std::string& app);

// The qnet-qkd flags the launcher adds for one end (role "a" at app.node, "b"
// at app.peer), every one as --NAME=VALUE: (b only) --peer, --session, --node, --psk_file,
// --key_file (OUT/qkd/NAME.ROLE.key), --kme_address, --kme_http_port,
// --kme_https_port, --pki_dir (OUT/pki), --saes, --peer_saes (comma lists,
// possibly empty).
std::vector<std::string> QkdFlags(const Topology& topology, size_t app_index,
                                  const std::string& role, const std::string& out_dir,
                                  const AddressOf& address_of);

// Writes every qkd app's PSK and the PKI (see above). Nothing to do (OK)
// without qkd apps.
absl::Status PrepareQkd(const Topology& topology, const std::string& out_dir,
                        const AddressOf& address_of);

// One key-fetch recipe per qkd app: which node a command must run at (for
// Mininet, where it runs inside that host's namespace) and the command.
struct KeyFetchCommand {
  std::string node;
  std::string command;
};
// Per qkd app, with the first <sae> at its node as master and the first at
// its peer as slave: status and enc_keys at the master's KME, dec_keys at the
// slave's (KEY_ID to be filled in), over HTTPS (client certificates of
// OUT/pki) when the app has an HTTPS port, and over plain HTTP (X-SAE-ID
// header) when it has an HTTP port. An app without SAEs at both ends gets a
// comment line saying so.
std::vector<KeyFetchCommand> KeyFetchCommands(const Topology& topology, const std::string& out_dir,
                                              const AddressOf& address_of);

// The recipes as printable text, each command on its own line, with
// `prefix_of(node)` put in front of commands (e.g. "mnexec -a 1234 ").
std::string FormatKeyFetchCommands(
    const std::vector<KeyFetchCommand>& commands,
    const std::function<std::string(const std::string&)>& prefix_of = nullptr);

}  // namespace qnet::launcher

#endif  // QNET_EMULATOR_QNET_QKD_SETUP_H_
