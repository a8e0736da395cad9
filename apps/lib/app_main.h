// The process side of an app program (apps/*/main.cc, specs/app-api.md
// APP-P1..APP-P4): connect to qnode's app socket, run one app object until it
// finishes, write its result JSON, exit with a status the launcher can read.
#ifndef QNET_APPS_LIB_APP_MAIN_H_
#define QNET_APPS_LIB_APP_MAIN_H_

#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "apps/lib/socket_app_client.h"
#include "stack/event_runtime.h"

namespace qnet::apps {

// Writes `json` and a newline to `path` ("" or "-": stdout). False on failure.
inline bool WriteResult(const std::string& path, const std::string& json) {
  if (path.empty() || path == "-") {
    std::cout << json << "\n";
    return static_cast<bool>(std::cout.flush());
  }
  std::ofstream out(path, std::ios::trunc);
  out << json << "\n";
  out.close();
  return static_cast<bool>(out);
}

// `App` has Start(), set_on_done(fn), done(), status() and ResultJson().
// Returns the process exit code: 0 when the app finished OK and the result was
// written (APP-P2), 1 when the app failed (the result is still written, with
// "ok": false), 2 when the result cannot be written or the runtime fails,
// 130 on SIGINT/SIGTERM.
template <typename App>
int RunAppProcess(const std::string& program, const std::string& app_socket,
                  const std::string& result_path, absl::Duration connect_timeout,
                  const std::function<std::unique_ptr<App>(AppClient*)>& make) {
  auto runtime = EventRuntime::Create();
  if (!runtime.ok()) {
    std::cerr << program << ": " << runtime.status() << "\n";
    return 2;
  }
  SocketAppClient client(runtime->get(), app_socket, connect_timeout);
  std::unique_ptr<App> app = make(&client);
  int signal = 0;
  (void)(*runtime)->HandleTerminationSignals([&](int signo) {
    signal = signo;
    (*runtime)->Stop();
  });
  app->set_on_done([&] { (*runtime)->Stop(); });
  app->Start();
  if (absl::Status s = (*runtime)->Run(); !s.ok()) {
    std::cerr << program << ": event loop: " << s << "\n";
    return 2;
  }
  if (!app->done()) {
    std::cerr << program << ": interrupted (signal " << signal << ")\n";
    return 130;
  }
  if (!WriteResult(result_path, app->ResultJson())) {
    std::cerr << program << ": cannot write the result to " << result_path << "\n";
    return 2;
  }
  if (!app->status().ok()) {
    std::cerr << program << ": " << app->status().message() << " (app socket " << app_socket
              << ")\n";
    return 1;
  }
  return 0;
}

}  // namespace qnet::apps

#endif  // QNET_APPS_LIB_APP_MAIN_H_
