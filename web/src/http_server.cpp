#include "virtcaps/http_server.h"

#include <CivetServer.h>
#include <civetweb.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>

#include "virtcaps/connection_gate.h"
#include "virtcaps/gathering_writer.h"
#include "virtcaps/log.h"
#include "virtcaps/renderers.h"
#include "virtcaps/scrape.h"
#include "virtcaps/strings.h"
#include "virtcaps/web_settings.h"
#include "virtcaps/xml.h"

namespace virtcaps {

namespace {

constexpr std::string_view kTextContentType = "text/plain; charset=utf-8";

std::string LandingPage(const std::string& telemetry_path) {
  const BuildInfo& build = CurrentBuildInfo();
  std::string path = EscapeXml(telemetry_path);
  return "<!DOCTYPE html>\n<html><head><title>virtcaps-agent</title></head><body>\n"
         "<h1>virtcaps-agent</h1>\n<p>Version " +
         EscapeXml(build.version) + " (revision " + EscapeXml(build.revision) +
         "): what this host can run, as libvirt capabilities and Prometheus metrics.</p>\n<ul>\n"
         "<li><a href=\"" +
         path + "\">" + path +
         "</a>: Prometheus metrics</li>\n"
         "<li><a href=\"/capabilities\">/capabilities</a>: libvirt capabilities XML</li>\n"
         "<li><a href=\"/domcapabilities\">/domcapabilities</a>: libvirt domain capabilities "
         "XML (?arch=&amp;virttype=&amp;machine=&amp;emulator=)</li>\n"
         "<li><a href=\"/healthz\">/healthz</a>: health</li>\n</ul>\n</body></html>\n";
}

// True when the Accept-Encoding header admits gzip (present and not "q=0"): the first
// "gzip" or "*" coding decides. Parsed in place (every Prometheus scrape sends it).
bool AcceptsGzip(std::string_view header) {
  std::optional<bool> accepted;
  ForEachField(header, ',', [&](std::string_view part) {
    if (accepted) return;
    size_t semicolon = part.find(';');
    std::string_view coding = Trim(part.substr(0, semicolon));
    if (coding != "gzip" && coding != "*") return;
    bool refused = false;
    if (semicolon != std::string_view::npos) {
      ForEachField(part.substr(semicolon + 1), ';', [&](std::string_view parameter) {
        parameter = Trim(parameter);
        if (parameter.rfind("q=", 0) == 0) {
          auto q = ParseDouble(parameter.substr(2));
          refused = q && *q <= 0;
        }
      });
    }
    accepted = !refused;
  });
  return accepted.value_or(false);
}

const HttpServer* ServerOf(const struct mg_connection* connection) {
  const auto* civet = static_cast<const CivetServer*>(mg_get_user_data(mg_get_context(connection)));
  return civet ? static_cast<const HttpServer*>(civet->getUserContext()) : nullptr;
}

// Writes all of `data` within `deadline`, in pieces, so a client that reads slowly or
// not at all holds its worker no longer than that. False when it did not all go out.
bool WriteWithin(struct mg_connection* connection, std::string_view data,
                 std::chrono::steady_clock::time_point deadline) {
  constexpr size_t kPiece = 64 * 1024;
  while (!data.empty()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    size_t piece = std::min(kPiece, data.size());
    if (mg_write(connection, data.data(), piece) != static_cast<int>(piece)) return false;
    data.remove_prefix(piece);
  }
  return true;
}

// Memory of each thread that answers requests, so that a response allocates nothing:
// a buffer for gathering its pieces (GatheringWriter; CivetWeb's worker stacks are
// 100 kB, too small to hold it), zlib's state for compressing the live families, and
// the compressed bytes. One mapping, made on the thread's first use; its pages are
// given back when a connection closes, as the stack's are.
class WorkerScratch {
 public:
  static constexpr size_t kGatherBytes = 64 * 1024;  // a loopback segment's worth
  static constexpr size_t kTailBytes = 8 * 1024;     // the live text (<= 4 kB), compressed
  static WorkerScratch& OfThisThread() {
    thread_local WorkerScratch scratch;
    return scratch;
  }
  ~WorkerScratch() {
    if (base_ != nullptr) munmap(base_, kBytes);
  }
  // Null when the mapping cannot be made (the callers then do without).
  char* gather() { return Use(0); }
  char* deflate_state() { return Use(kGatherBytes); }
  char* tail() { return Use(kGatherBytes + kGzipCloseScratchBytes); }
  void Release() {
    if (base_ == nullptr || !touched_) return;
    madvise(base_, kBytes, MADV_DONTNEED);
    touched_ = false;
  }

 private:
  static constexpr size_t kBytes = kGatherBytes + kGzipCloseScratchBytes + kTailBytes;
  char* Use(size_t offset) {
    if (base_ == nullptr) {
      void* mapped =
          mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mapped == MAP_FAILED) return nullptr;
      base_ = static_cast<char*>(mapped);
    }
    touched_ = true;
    return base_ + offset;
  }
  char* base_ = nullptr;
  bool touched_ = false;
};

// Answers with `status` and closes the connection (the request, or what follows it on
// the connection, is not read any further).
int Refuse(struct mg_connection* connection, int status, std::string_view reason) {
  char head[256];
  int length = std::snprintf(head, sizeof(head),
                             "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                             status, mg_get_response_code_text(connection, status), reason.size());
  mg_disable_connection_keep_alive(connection);
  if (length > 0 && static_cast<size_t>(length) < sizeof(head)) {
    mg_write(connection, head, static_cast<size_t>(length));
    mg_write(connection, reason.data(), reason.size());
  }
  return status;
}

// The size of a request head as sent (less any extra white space CivetWeb trimmed).
size_t HeadBytes(const struct mg_request_info* request) {
  auto length = [](const char* text) { return text ? std::strlen(text) : 0; };
  size_t bytes = length(request->request_method) + 1 + length(request->request_uri) + 1 +
                 length("HTTP/") + length(request->http_version) + 2 + 2;
  for (int i = 0; i < request->num_headers; ++i) {
    bytes += length(request->http_headers[i].name) + 2 + length(request->http_headers[i].value) + 2;
  }
  return bytes;
}

// Why a request cannot be served as it came (decided from its head alone, before any
// body is read), as a status and a reason; status 0 when it can. Every endpoint is GET or
// HEAD, so a body is never needed: refusing it before reading it means a slow body
// holds no worker. Bodies framed two ways are refused as request smuggling attempts.
std::pair<int, std::string_view> RequestProblem(const struct mg_request_info* request,
                                                int max_head_bytes) {
  int content_lengths = 0;
  const char* content_length = nullptr;
  bool transfer_encoding = false;
  for (int i = 0; i < request->num_headers; ++i) {
    const char* name = request->http_headers[i].name;
    if (mg_strcasecmp(name, "Content-Length") == 0) {
      ++content_lengths;
      content_length = request->http_headers[i].value;
    } else if (mg_strcasecmp(name, "Transfer-Encoding") == 0) {
      transfer_encoding = true;
    }
  }
  if (HeadBytes(request) > static_cast<size_t>(max_head_bytes)) {
    return {431, "431 request header fields too large\n"};
  }
  if (transfer_encoding && content_lengths > 0) {
    return {400, "400 bad request: Content-Length and Transfer-Encoding together\n"};
  }
  if (content_lengths > 1) return {400, "400 bad request: more than one Content-Length\n"};
  if (transfer_encoding) {
    return {411, "411 length required: request bodies are not accepted (GET and HEAD only)\n"};
  }
  if (content_length != nullptr && Trim(content_length) != "0") {
    return {413, "413 content too large: request bodies are not accepted (GET and HEAD only)\n"};
  }
  return {0, {}};
}

// CivetWeb's C-level handler: one entry point for every method and path.
// CivetWeb's authorization hook, standing in for its own check: without one, CivetWeb
// looks for a Digest password file (".htpasswd") on the request's file system path
// for every request, a stat per scrape, and a /.htpasswd that has nothing to do with
// the agent would make it demand Digest credentials. The agent's basic auth is decided
// in HandleRequest.
int AllowEveryRequest(struct mg_connection*, void*) { return 1; }

int HandleRequest(struct mg_connection* connection, void* data) {
  const auto* server = static_cast<const HttpServer*>(data);
  const struct mg_request_info* request = mg_get_request_info(connection);
  std::string_view method = request->request_method ? request->request_method : "";
  std::string_view path = request->local_uri ? request->local_uri : "";
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(server->options().request_timeout_ms);
  // The web config (auth, headers) as of this request; it may be swapped meanwhile.
  std::shared_ptr<const WebSettings> web;
  if (server->web_settings() != nullptr) web = server->web_settings()->Current();
  bool needs_auth = web && !(server->options().health_without_auth && path == "/healthz");
  // Made in place (the response carries its live text buffer: no copy of it).
  auto answer = [&] {
    if (needs_auth && !web->auth->Allows(mg_get_header(connection, "Authorization"))) {
      return HttpServer::Unauthorized();
    }
    const char* accept_encoding = mg_get_header(connection, "Accept-Encoding");
    const char* accept = mg_get_header(connection, "Accept");
    return server->Handle(
        HttpServer::Request{method, path, request->query_string ? request->query_string : "",
                            accept ? accept : "", accept_encoding ? accept_encoding : ""});
  };
  const HttpServer::Response response = answer();
  std::string_view tail = response.tail_text();
  std::string_view extra_headers = web ? std::string_view(web->response_headers) : "";

  // The head is formatted on the stack; the body is written straight from the snapshot.
  char head[4096];
  int length = std::snprintf(
      head, sizeof(head),
      "HTTP/1.1 %d %s\r\nContent-Type: %.*s\r\nContent-Length: %zu\r\n%s%.*s%s%s%s%s%.*s%s%s%s%s"
      "%s%.*s\r\n",
      response.status, mg_get_response_code_text(connection, response.status),
      static_cast<int>(response.content_type.size()), response.content_type.data(),
      response.body.size() + tail.size(),
      response.content_encoding.empty() ? "" : "Content-Encoding: ",
      static_cast<int>(response.content_encoding.size()), response.content_encoding.data(),
      response.content_encoding.empty() ? "" : "\r\n",
      response.vary_accept_encoding ? "Vary: Accept-Encoding\r\n" : "",
      response.vary_accept ? "Vary: Accept\r\n" : "",
      response.allow.empty() ? "" : "Allow: ", static_cast<int>(response.allow.size()),
      response.allow.data(), response.allow.empty() ? "" : "\r\n",
      response.retry_after ? "Retry-After: 1\r\n" : "",
      response.challenge ? "WWW-Authenticate: " : "",
      response.challenge ? BasicAuth::kChallenge.data() : "", response.challenge ? "\r\n" : "",
      static_cast<int>(extra_headers.size()), extra_headers.data());
  // The web config caps its headers far below the buffer; never send a cut head.
  if (length < 0 || static_cast<size_t>(length) >= sizeof(head)) {
    mg_send_http_error(connection, 500, "%s", "response head too long\n");
    return 500;
  }
  // Counted before the write, so a client's next request always sees this one.
  server->CountRequest(path, response.status);
  bool sent = false;
  if (method == "HEAD") {
    sent = WriteWithin(connection, std::string_view(head, static_cast<size_t>(length)), deadline);
  } else if (response.prepared != nullptr && extra_headers.empty()) {
    // The common case: one write of the response rendered with the snapshot. (A head
    // and a body in separate segments would wait out the client's delayed ACK; for
    // the other responses TCP_NODELAY prevents that.)
    sent = WriteWithin(connection, response.prepared->bytes, deadline);
  } else {
    GatheringWriter writer(
        WorkerScratch::OfThisThread().gather(), WorkerScratch::kGatherBytes,
        [&](std::string_view bytes) { return WriteWithin(connection, bytes, deadline); });
    sent = writer.Add(std::string_view(head, static_cast<size_t>(length))) &&
           writer.Add(response.body) && writer.Add(tail) && writer.Flush();
  }
  // A client that does not take its response in time gets no further request served.
  if (!sent) mg_disable_connection_keep_alive(connection);
  // Its fields are four strings: built only when they are written (a request at info
  // level allocates nothing for its log record).
  if (!LogDebugEnabled()) return response.status;
  LogDebug("request", {{"method", std::string(method)},
                       {"path", std::string(path)},
                       {"status", std::to_string(response.status)},
                       {"content_type", std::string(response.content_type)}});
  return response.status;
}

// CivetWeb's begin_request callback: every request, before handler lookup. Refuses
// what the head alone shows cannot be served, and serves WebSocket upgrade requests as
// plain requests (CivetWeb would otherwise answer them without a status line).
int BeginRequest(struct mg_connection* connection) {
  const HttpServer* server = ServerOf(connection);
  if (server == nullptr) return 0;
  const struct mg_request_info* request = mg_get_request_info(connection);
  auto [status, reason] = RequestProblem(request, server->options().max_request_header_bytes);
  if (status != 0) return Refuse(connection, status, reason);
  const char* upgrade = mg_get_header(connection, "Upgrade");
  if (upgrade != nullptr) return HandleRequest(connection, const_cast<HttpServer*>(server));
  return 0;
}

// CivetWeb's http_error callback: its own answers to requests it could not parse.
// A request head larger than max_request_header_bytes is 431 (RFC 6585), where
// CivetWeb says 413 or 400; the rest keep CivetWeb's answer, with the connection closed.
// A head that overflows CivetWeb's buffer (twice max_request_header_bytes) gets 400
// "Malformed message" from CivetWeb, as garbage does; what CivetWeb took from the socket
// tells them apart: a head that filled the whole buffer is too large.
int HttpError(struct mg_connection* connection, int status, const char* message) {
  // Answered here either way: AnswerDroppedRequest must not answer it a second time.
  mg_set_user_connection_data(connection, nullptr);
  std::string_view text = message != nullptr ? message : "";
  bool too_large = status == 413 && text == "Message too large";
  const HttpServer* server = ServerOf(connection);
  const struct mg_request_info* request = mg_get_request_info(connection);
  if (!too_large && status == 400 && text == "Malformed message" && server != nullptr &&
      server->gate() != nullptr && request != nullptr) {
    auto consumed = server->gate()->BytesConsumed(request->remote_addr, request->remote_port);
    too_large = consumed &&
                *consumed >= 2 * static_cast<uint64_t>(server->options().max_request_header_bytes);
  }
  if (too_large) {
    Refuse(connection, 431, "431 request header fields too large\n");
    return 0;
  }
  return 1;
}

// CivetWeb's init_connection callback: marks a connection whose requests CivetWeb
// reads (a TLS connection gets here only after its handshake).
int ConnectionOpened(const struct mg_connection* connection, void** connection_data) {
  *connection_data = const_cast<HttpServer*>(ServerOf(connection));
  return 0;
}

// CivetWeb 1.15 reads `OPTIONS *` and absolute-form requests for another host, then
// closes the connection without a word. Answers them just before it closes: OPTIONS *
// with what every path allows, the rest with 400.
void AnswerDroppedRequest(struct mg_connection* connection) {
  const struct mg_request_info* request = mg_get_request_info(connection);
  // No request info: a connection that never got to a request (a failed TLS handshake).
  if (request == nullptr || mg_get_user_connection_data(connection) == nullptr ||
      request->request_uri == nullptr || request->request_method == nullptr ||
      request->http_version == nullptr) {
    return;  // no complete request on this connection (or CivetWeb answered it)
  }
  std::string_view uri = request->request_uri;
  if (uri == "*" && std::string_view(request->request_method) == "OPTIONS") {
    static constexpr std::string_view kAllowed =
        "HTTP/1.1 200 OK\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    mg_write(connection, kAllowed.data(), kAllowed.size());
  } else if (uri == "*" || request->local_uri == nullptr) {
    Refuse(connection, 400, "400 bad request: not a request for this server\n");
  }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kReleaseIdleStacks = false;  // their shadow memory tracks the stack too
#else
constexpr bool kReleaseIdleStacks = true;
#endif

// Gives back to the kernel the pages of this worker's stack below the current frame
// (madvise MADV_DONTNEED: the next use gets fresh zero pages). CivetWeb hands each new
// connection to the worker idle the longest, so over time every one of the pool's
// workers serves a connection and the ~24 kB of stack a request path touches stayed
// resident in each (64 x 24 kB, RSS creeping up by 24 kB per worker first used). Done
// when a connection closes, on that worker's thread: one system call per connection.
void ReleaseIdleStack() {
  if (!kReleaseIdleStacks) return;
  thread_local uintptr_t stack_low = 0;  // lowest usable address of this thread's stack
  if (stack_low == 0) {
    pthread_attr_t attributes;
    if (pthread_getattr_np(pthread_self(), &attributes) != 0) return;
    void* address = nullptr;
    size_t size = 0;
    int status = pthread_attr_getstack(&attributes, &address, &size);
    pthread_attr_destroy(&attributes);
    if (status != 0 || address == nullptr) return;
    stack_low = reinterpret_cast<uintptr_t>(address);
  }
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  // A margin below this frame for the madvise call itself (and the ABI's red zone).
  constexpr uintptr_t kMargin = 1024;
  char here = 0;
  uintptr_t frame = reinterpret_cast<uintptr_t>(&here);
  if (frame < stack_low + kMargin) return;
  uintptr_t end = (frame - kMargin) & ~(page - 1);
  uintptr_t start = (stack_low + page - 1) & ~(page - 1);
  if (end > start) madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED);
}

// CivetWeb's connection_close callback (on the worker that served the connection):
// answers what CivetWeb dropped, then gives back the stack and scratch pages the
// connection used.
void ConnectionClosed(const struct mg_connection* connection) {
  AnswerDroppedRequest(const_cast<struct mg_connection*>(connection));
  WorkerScratch::OfThisThread().Release();
  ReleaseIdleStack();
}

// CivetWeb's init_ssl callback: we set up its SSL_CTX ourselves (return 1).
int InitSsl(void* ssl_ctx, void* user_data) {
  const auto* civet = static_cast<const CivetServer*>(user_data);
  const auto* server = static_cast<const HttpServer*>(civet->getUserContext());
  Status status = ConfigureServerContext(ssl_ctx, server->web_settings());
  if (!status.ok()) {
    LogError("cannot set up TLS", {{"error", status.message()}});
    return -1;
  }
  return 1;
}

// CivetWeb wants "127.0.0.1:9977" or "9977" (every address) for ":9977".
std::string CivetPort(const std::string& address) {
  return address.size() > 1 && address.front() == ':' ? address.substr(1) : address;
}

// The IPv4 address a socket is bound to, or nullopt when it is not an IPv4 socket.
std::optional<struct sockaddr_in> BoundIpv4(int fd) {
  struct sockaddr_storage address;
  socklen_t length = sizeof(address);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&address), &length) != 0 ||
      address.ss_family != AF_INET) {
    return std::nullopt;
  }
  struct sockaddr_in in;
  std::memcpy(&in, &address, sizeof(in));
  return in;
}

bool IsListening(int fd) {
  int listening = 0;
  socklen_t length = sizeof(listening);
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 && listening != 0;
}

// This process's listening socket bound to 127.0.0.1:port, found among its open fds.
int FindLoopbackListener(int port) {
  DIR* directory = opendir("/proc/self/fd");  // the agent's own fds, not the host's
  if (directory == nullptr) return -1;
  int found = -1;
  int scanning = dirfd(directory);
  while (struct dirent* entry = readdir(directory)) {
    auto number = ParseUint(entry->d_name);
    if (!number || static_cast<int>(*number) == scanning) continue;
    int fd = static_cast<int>(*number);
    auto bound = BoundIpv4(fd);
    if (bound && ntohs(bound->sin_port) == port &&
        ntohl(bound->sin_addr.s_addr) == INADDR_LOOPBACK && IsListening(fd)) {
      found = fd;
      break;
    }
  }
  closedir(directory);
  return found;
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, const SnapshotStore& store)
    : options_(std::move(options)),
      store_(store),
      landing_page_(LandingPage(options_.telemetry_path)),
      requests_(std::make_unique<RequestCounters>(options_.telemetry_path)),
      process_(std::make_unique<ProcessStats>()) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::CountRequest(std::string_view path, int status) const {
  requests_->Count(path, status);
}

void HttpServer::AnswerMetrics(const Request& request, bool gzip, Response& response) const {
  const Snapshot& snapshot = *response.snapshot;
  std::vector<std::string> available;  // only a query can name collectors
  if (!request.query.empty()) {
    for (const CollectorOutcome& outcome : snapshot.caps.collectors) {
      available.push_back(outcome.name);
    }
  }
  auto selection = SelectCollectors(request.query, available);
  if (!selection) {
    response.status = 400;
    response.owned_body =
        std::make_shared<const std::string>("400 bad request: " + selection.error() + "\n");
    response.body = *response.owned_body;
    return;
  }
  ExpositionFormat format = request.accept.empty() ? ExpositionFormat::kPrometheusText
                                                   : NegotiateExpositionFormat(request.accept);
  bool openmetrics = format == ExpositionFormat::kOpenMetrics;
  // Live families, read now: the agent's process and the requests answered so far,
  // written into the response itself (no allocation on the fast path).
  FixedText live(response.live.data(), response.live.size());
  // The process sample may be up to 100 ms old: nothing that scrapes every few
  // seconds can tell, and a flood of scrapes does not read /proc for each.
  AppendLiveFamilies(live, format, process_->Recent(std::chrono::milliseconds(100)), *requests_);
  if (openmetrics) live.Append(kOpenMetricsEof);
  if (live.overflowed()) {  // cannot happen with the families above; never send a cut page
    response.status = 500;
    response.body = "500 internal error: live families too long\n";
    return;
  }
  response.live_size = live.view().size();
  std::string_view live_text = live.view();

  response.content_type = openmetrics ? kOpenMetricsContentType : kMetricsContentType;
  response.content_encoding = gzip ? "gzip" : "";
  response.vary_accept_encoding = true;
  response.vary_accept = true;
  if (*selection) {
    // Filtered: rendered for this request from the snapshot's data model.
    MetricsOptions options = snapshot.metrics_options;
    options.collectors = **selection;
    std::string page =
        openmetrics
            ? RenderOpenMetrics(snapshot.caps, snapshot.refresh, CurrentBuildInfo(), options,
                                /*terminate=*/false)
            : RenderPrometheus(snapshot.caps, snapshot.refresh, CurrentBuildInfo(), options);
    page += live_text;
    response.owned_body = std::make_shared<const std::string>(gzip ? Gzip(page) : page);
    response.body = *response.owned_body;
    return;
  }
  // The fast path: the pre-rendered body, then the live families (compressed, they
  // close the gzip member the snapshot left open).
  if (gzip) {
    const OpenGzip& open =
        openmetrics ? snapshot.openmetrics_gzip_open() : snapshot.metrics_gzip_open();
    response.body = open.bytes;
    WorkerScratch& scratch = WorkerScratch::OfThisThread();
    char* state = scratch.deflate_state();
    size_t size = state == nullptr
                      ? 0
                      : GzipCloseInto(open, live_text, scratch.tail(), WorkerScratch::kTailBytes,
                                      state, kGzipCloseScratchBytes);
    if (size > 0) {
      response.compressed_tail = std::string_view(scratch.tail(), size);
    } else {
      response.owned_tail = std::make_shared<const std::string>(GzipClose(open, live_text));
    }
  } else {
    response.body = openmetrics ? snapshot.openmetrics : snapshot.metrics;
    response.tail_is_live = true;  // response.live, which this response carries
  }
}

HttpServer::Response HttpServer::Handle(const Request& request) const {
  std::string_view method = request.method;
  std::string_view path = request.path;
  Response response;
  response.content_type = kTextContentType;
  bool known_path = path == "/" || path == options_.telemetry_path || path == "/capabilities" ||
                    path == "/healthz" || path == "/domcapabilities";
  if (!known_path) {
    response.status = 404;
    response.body = "404 page not found\n";
    return response;
  }
  if (method != "GET" && method != "HEAD") {
    response.status = 405;
    response.allow = "GET, HEAD";
    response.body = "405 method not allowed\n";
    return response;
  }
  if (path == "/") {
    response.content_type = "text/html; charset=utf-8";
    response.body = landing_page_;
    return response;
  }
  response.snapshot = store_.Current();
  const Snapshot* snapshot = response.snapshot.get();
  if (path == "/healthz") {
    response.status = snapshot ? 200 : 503;
    response.body = snapshot ? "ok\n" : "starting: no snapshot yet\n";
    return response;
  }
  if (!snapshot) {
    response.status = 503;
    response.retry_after = true;
    response.body = "starting: the first probe of the host has not finished\n";
    return response;
  }
  if (path == "/domcapabilities") {
    DomainCapabilities(*snapshot, request.query, response);
    return response;
  }
  bool gzip = AcceptsGzip(request.accept_encoding);
  bool metrics = path != "/capabilities";
  if (metrics) {
    AnswerMetrics(request, gzip, response);
    return response;
  }
  auto driver = SelectDriver(request.query);
  if (!driver) {
    response.status = 400;
    response.owned_body =
        std::make_shared<const std::string>("400 bad request: " + driver.error() + "\n");
    response.body = *response.owned_body;
    return response;
  }
  if (!driver->empty()) {  // one driver's document, rendered for this request
    std::string xml = RenderCapabilitiesXml(snapshot->caps, *driver);
    response.owned_body = std::make_shared<const std::string>(gzip ? Gzip(xml) : xml);
    response.body = *response.owned_body;
    response.content_type = kXmlContentType;
    response.content_encoding = gzip ? "gzip" : "";
    response.vary_accept_encoding = true;
    return response;
  }
  response.prepared = gzip ? snapshot->xml_gzip.get() : snapshot->xml.get();
  response.content_type = kXmlContentType;
  response.body = response.prepared->body();
  response.content_encoding = gzip ? "gzip" : "";
  response.vary_accept_encoding = true;
  return response;
}

// /domcapabilities?arch=&virttype=&machine=&emulator=, rendered from the snapshot for
// this request (small: one emulator's machines and models). A malformed query is a
// 400, an arch/emulator/virt type/machine the host does not have a 404.
void HttpServer::DomainCapabilities(const Snapshot& snapshot, std::string_view query,
                                    Response& response) {
  auto parsed = ParseDomainCapabilitiesQuery(query);
  std::shared_ptr<std::string> body;
  if (!parsed) {
    response.status = 400;
    body = std::make_shared<std::string>("400 bad request: " + parsed.error() + "\n");
  } else if (auto document = RenderDomainCapabilitiesXml(snapshot.caps, *parsed); !document) {
    response.status = 404;
    body = std::make_shared<std::string>("404 not found: " + document.error() + "\n");
  } else {
    response.content_type = kXmlContentType;
    body = std::make_shared<std::string>(std::move(document).value());
  }
  response.owned_body = body;
  response.body = *body;
}

Expected<DomainCapabilitiesQuery> ParseDomainCapabilitiesQuery(std::string_view query) {
  DomainCapabilitiesQuery result;
  std::set<std::string> seen;
  if (query.size() > 4096) return Status::Error("query string longer than 4096 bytes");
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t equals = pair.find('=');
    std::string key(pair.substr(0, equals));
    std::string raw(equals == std::string_view::npos ? std::string_view()
                                                     : pair.substr(equals + 1));
    // Percent-decoding (and '+' as space), as forms encode it; bad escapes are errors.
    std::string value;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '+') {
        value += ' ';
      } else if (raw[i] == '%') {
        std::optional<uint64_t> hex;
        if (i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
          hex = ParseUint(std::string_view(raw).substr(i + 1, 2), 16);
        }
        if (!hex || *hex == 0) {
          return Status::Error("bad percent escape in '" + key + "'");
        }
        value += static_cast<char>(*hex);
        i += 2;
      } else {
        value += raw[i];
      }
    }
    if (!seen.insert(key).second) return Status::Error("'" + key + "' given twice");
    if (key == "arch") {
      result.arch = value;
    } else if (key == "virttype") {
      result.virttype = value;
    } else if (key == "machine") {
      result.machine = value;
    } else if (key == "emulator") {
      result.emulator = value;
    } else {
      return Status::Error("unknown parameter '" + key.substr(0, 64) +
                           "' (expected arch, virttype, machine, emulator)");
    }
  }
  return result;
}

HttpServer::Response HttpServer::Unauthorized() {
  Response response;
  response.status = 401;
  response.content_type = kTextContentType;
  response.body = "401 Unauthorized\n";
  response.challenge = true;
  return response;
}

Status HttpServer::Start() {
  if (!options_.web_config_file.empty() && !web_) {
    auto watcher = WebSettingsWatcher::Open(options_.web_config_file);
    if (!watcher) return Status::Error("--web.config.file: " + watcher.error());
    web_ = std::move(*watcher);
    web_->OnReload(options_.on_web_config_reload);
    tls_ = web_->Current()->tls != nullptr;
  }
  if (tls_) {
    if (Status status = CheckCivetwebTlsLookup(); !status.ok()) {
      return Status::Error("cannot serve HTTPS: " + status.message());
    }
  }
  std::vector<Ipv4Network> allowed;
  for (const std::string& text : options_.allowed_networks) {
    auto network = ParseIpv4Network(text);
    if (!network) return Status::Error("web.allowed_networks: " + network.error());
    allowed.push_back(*network);
  }
  gate_ = std::make_unique<ConnectionGate>(options_.max_connections_per_client, std::move(allowed));
  for (int fd : options_.inherited_listeners) {
    if (!BoundIpv4(fd) || !IsListening(fd)) {
      return Status::Error("inherited fd " + std::to_string(fd) +
                           " is not a listening IPv4 socket");
    }
  }
  std::string ports;
  // With inherited listeners CivetWeb binds one loopback port 0 for each, replaced by
  // the inherited socket once it runs (AdoptInheritedListeners).
  std::vector<std::string> listen = options_.listen_addresses;
  if (!options_.inherited_listeners.empty()) {
    listen.assign(options_.inherited_listeners.size(), "127.0.0.1:0");
  }
  for (const std::string& address : listen) {
    // CivetWeb's "s" suffix: this port speaks TLS.
    ports += (ports.empty() ? "" : ",") + CivetPort(address) + (tls_ ? "s" : "");
  }
  std::vector<std::string> civet_options = {
      "listening_ports",
      ports,
      "num_threads",
      std::to_string(options_.worker_threads),
      "enable_keep_alive",
      "yes",
      "tcp_nodelay",
      "1",
      "request_timeout_ms",
      std::to_string(options_.request_timeout_ms),
      // CivetWeb's request buffer, twice the limit: heads up to that size are read and
      // refused with 431 by BeginRequest (CivetWeb's own answer to a full buffer is 400).
      "max_request_size",
      std::to_string(2 * options_.max_request_header_bytes),
      "enable_directory_listing",
      "no",
      // A burst of connections from one client is refused by the gate in accept(), but
      // they wait in the kernel's accept queue first: with CivetWeb's 200, a burst of 300
      // fills it and other clients' SYNs are dropped (retried after 1 s). 1024 absorbs
      // bursts while the accepting thread catches up.
      "listen_backlog",
      "1024",
      // Absolute-form request targets (http://host:port/metrics) name this server
      // whatever the host part says: served, not dropped as proxy requests.
      "enable_auth_domain_check",
      "no",
  };
  CivetCallbacks callbacks;
  if (tls_) callbacks.init_ssl = InitSsl;
  callbacks.begin_request = BeginRequest;
  callbacks.http_error = HttpError;
  callbacks.connection_close = ConnectionClosed;
  callbacks.init_connection = ConnectionOpened;
  try {
    server_ = std::make_unique<CivetServer>(civet_options, &callbacks, this);
  } catch (const CivetException& error) {
    return Status::Error("cannot listen on " + ports + ": " + error.what());
  }
  if (!options_.inherited_listeners.empty()) {
    if (Status status = AdoptInheritedListeners(); !status.ok()) {
      Stop();
      return status;
    }
  } else {
    struct mg_server_port bound[16];
    int count = mg_get_server_ports(server_->getContext(), 16, bound);
    std::vector<int> guarded;
    for (int i = 0; i < count; ++i) guarded.push_back(bound[i].port);
    gate_->Guard(std::move(guarded));
  }
  auto* context = const_cast<struct mg_context*>(server_->getContext());
  mg_set_auth_handler(context, "/", AllowEveryRequest, nullptr);
  mg_set_request_handler(context, "/", HandleRequest, const_cast<HttpServer*>(this));
  if (web_) web_->Start();  // re-reads the web config when its files change
  return Status();
}

void HttpServer::Stop() {
  if (server_) {
    server_->close();
    server_.reset();
  }
  gate_.reset();
  if (web_) web_->Stop();
}

// CivetWeb 1.15 has no way to be given a listening socket: it binds every port in
// "listening_ports" itself, and socket activation means serving the one systemd bound
// (ports below 1024 without CAP_NET_BIND_SERVICE, no port race at start, connections
// queued while the agent restarts). So CivetWeb binds a loopback port 0 for each
// inherited socket, and once it runs, dup3() puts the inherited socket on the very fd
// number CivetWeb listens on. dup3 swaps the file under that number atomically, and
// CivetWeb's accepting thread reads the number again on each turn of its poll loop:
// from then on it polls and accepts on the inherited socket. The loopback socket is
// shut down and closed (a local client that connected to it in the microseconds before
// is dropped; it was never announced). The inherited socket is made non-blocking, so a
// connection that goes away between poll and accept cannot block the accepting thread
// (CivetWeb takes EAGAIN as "nothing to accept"), and close-on-exec, so the emulators
// the agent runs never hold it. CivetWeb's TLS flag is per listening slot, so HTTPS
// works too, and Stop() closes the inherited socket with the rest. What CivetWeb
// remembers of the loopback address (mg_get_server_ports) is not used: the connection
// gate guards, and BoundAddresses reports, the inherited sockets' own ports.
Status HttpServer::AdoptInheritedListeners() {
  struct mg_server_port bound[16];
  int count = mg_get_server_ports(server_->getContext(), 16, bound);
  if (count != static_cast<int>(options_.inherited_listeners.size())) {
    return Status::Error("CivetWeb listens on " + std::to_string(count) + " sockets, expected " +
                         std::to_string(options_.inherited_listeners.size()));
  }
  std::vector<int> guarded;
  for (int i = 0; i < count; ++i) {
    int inherited = options_.inherited_listeners[static_cast<size_t>(i)];
    int civet = FindLoopbackListener(bound[i].port);
    if (civet < 0) {
      return Status::Error("cannot find CivetWeb's listening socket on 127.0.0.1:" +
                           std::to_string(bound[i].port));
    }
    int flags = fcntl(inherited, F_GETFL);
    int loopback = fcntl(civet, F_DUPFD_CLOEXEC, 0);  // CivetWeb's socket, kept to wake it
    if (flags < 0 || loopback < 0 || fcntl(inherited, F_SETFL, flags | O_NONBLOCK) < 0 ||
        dup3(inherited, civet, O_CLOEXEC) < 0) {
      int error = errno;
      if (loopback >= 0) ::close(loopback);
      return Status::Error("cannot serve inherited fd " + std::to_string(inherited) + ": " +
                           std::strerror(error));
    }
    // The accepting thread may be in poll() on the loopback socket: shutting it down
    // wakes it (POLLHUP, no POLLIN: nothing is accepted from it) and it polls again, on
    // the inherited socket now under the same number.
    ::shutdown(loopback, SHUT_RDWR);
    ::close(loopback);
    ::close(inherited);
    auto address = BoundIpv4(civet);
    char text[INET_ADDRSTRLEN] = "?";
    if (address) inet_ntop(AF_INET, &address->sin_addr, text, sizeof(text));
    int port = address ? ntohs(address->sin_port) : 0;
    inherited_addresses_.push_back(std::string(text) + ":" + std::to_string(port));
    guarded.push_back(port);
  }
  options_.inherited_listeners.clear();  // closed above; now CivetWeb's to close
  gate_->Guard(std::move(guarded));
  return Status();
}

std::vector<std::string> HttpServer::BoundAddresses() const {
  std::vector<std::string> addresses;
  if (!server_) return addresses;
  if (!inherited_addresses_.empty()) return inherited_addresses_;
  struct mg_server_port ports[16];
  int count = mg_get_server_ports(server_->getContext(), 16, ports);
  for (int i = 0; i < count; ++i) {
    // CivetWeb does not report the bound IP; the configured host part is reused.
    std::string host = "0.0.0.0";
    if (static_cast<size_t>(i) < options_.listen_addresses.size()) {
      const std::string& configured = options_.listen_addresses[static_cast<size_t>(i)];
      size_t colon = configured.rfind(':');
      if (colon != std::string::npos && colon > 0) host = configured.substr(0, colon);
    }
    addresses.push_back(host + ":" + std::to_string(ports[i].port));
  }
  return addresses;
}

}  // namespace virtcaps
