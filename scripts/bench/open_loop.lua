-- Open-loop load for wrk, corrected for coordinated omission the way wrk2 corrects it.
--
--     wrk -t16 -c16 -d5s -s open_loop.lua URL -- INTERVAL_US THREADS KIND PREFIX SECONDS
--
-- Run it with one connection per thread (-t N -c N). Each connection sends one request every
-- INTERVAL_US microseconds, on a schedule of its own, staggered so the N connections together send
-- evenly; the schedule does not wait for answers. When an answer comes late, the requests that fell
-- due meanwhile count their latency from when they were due, not from when the connection was free
-- to send them. When the connection was free and only the timer fired late (wrk's timers are whole
-- milliseconds), latency counts from the moment the request is written: that lateness is the load
-- generator's, not the server's. Requests still unanswered when the run ends count as waiting from
-- their due time to the end, so a server that stops answering cannot shrink its own tail.
--
-- KIND: soap (the bench's SOAP passthrough call), distinct (a new order on every write), keyed (a new
-- order with its own Idempotency-Key), hot (every write on one order). PREFIX keeps this run's order
-- ids and keys apart from any earlier run's.
--
-- done() prints one line: "open-loop {json}" with p50/p99/max in ms, answers, failures (not 2xx)
-- and unanswered (due but not answered by the end: in flight or never sent).

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } open_loop_timespec;
int clock_gettime(int clock, open_loop_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("open_loop_timespec")

local function now() -- microseconds
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_nsec) / 1e3
end

local SOAP = '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
  .. '<m:GetStock xmlns:m="urn:acme"><m:entity>ACME-DE</m:entity><m:sku>SKU-1</m:sku></m:GetStock>'
  .. "</s:Body></s:Envelope>"
local ORDER = '{"customer": "C-1", "qty": 3}'

-- main state: hand each thread its number, keep the threads for done()
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("number", #threads)
end

-- thread state
local function headers(extra) -- wrk's own (-H, Host) and these
  local all = {}
  for name, value in pairs(wrk.headers) do
    all[name] = value
  end
  for name, value in pairs(extra) do
    all[name] = value
  end
  return all
end

function init(args)
  interval = tonumber(args[1])
  local count = tonumber(args[2])
  kind = args[3]
  prefix = args[4] .. "-" .. number
  local start = now()
  ends = start + tonumber(args[5]) * 1e6 -- wrk stops its threads at -d
  due = start + interval * (number - 1) / count -- staggered: the connections take turns
  started = nil -- when the request in flight counts from
  answered = -math.huge -- when the last answer came
  sent = 0
  failures = 0
  latencies = {}
  if kind == "soap" then
    soap = wrk.format("POST", "/soap/Bench", headers({ ["Content-Type"] = "text/xml", ["SOAPAction"] = '"GetStock"' }), SOAP)
  end
end

function delay()
  return math.max(0, math.ceil((due - now()) / 1000))
end

function request()
  local written = now()
  started = (answered > due) and due or written
  sent = sent + 1
  if kind == "soap" then
    return soap
  end
  local extra = { ["Content-Type"] = "application/json" }
  local order = "PO-" .. prefix .. "-" .. sent
  if kind == "hot" then
    order = "PO-HOT"
  elseif kind == "keyed" then
    extra["Idempotency-Key"] = "bench-" .. prefix .. "-" .. sent
  end
  return wrk.format("POST", "/v1/ACME-DE/orders/" .. order, headers(extra), ORDER)
end

function response(status, headers, body)
  answered = now()
  latencies[#latencies + 1] = answered - started
  if status < 200 or status > 299 then
    failures = failures + 1
  end
  due = due + interval
end

-- main state again, after the threads stopped
function done(summary, latency, requests)
  local all, failed, unanswered = {}, 0, 0
  for _, thread in ipairs(threads) do
    for _, value in ipairs(thread:get("latencies")) do
      all[#all + 1] = value
    end
    failed = failed + thread:get("failures")
    local next_due, every, ended = thread:get("due"), thread:get("interval"), thread:get("ends")
    while next_due < ended do -- the request in flight, if any, then those never sent
      all[#all + 1] = ended - next_due
      unanswered = unanswered + 1
      next_due = next_due + every
    end
  end
  table.sort(all)
  local function percentile(p)
    if #all == 0 then
      return 0
    end
    return all[math.max(1, math.ceil(#all * p / 100))] / 1000
  end
  io.write(string.format(
    'open-loop {"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "answers": %d, "failures": %d, "unanswered": %d}\n',
    percentile(50), percentile(99), percentile(100), summary.requests, failed, unanswered
  ))
end
