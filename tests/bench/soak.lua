-- wrk script of the soak benchmark (tests/bench/soak.sh): replays the requests soak_requests.py
-- wrote, in order, round and round, and counts the answers per request.
--   SOAK_REQUESTS  the requests.tsv to read (name, class, route, expected statuses, file)
--   SOAK_RESULTS   where done() writes one line per (request, status): name, class, route,
--                  expected, status, count; the shell script's verdict reads it
--
-- A thread has many connections waiting at once, so response() cannot know which request it
-- answers from the order of calls: each request carries X-Request-Id: soak-<n>, which the server
-- echoes, and <n> is its line in requests.tsv.

local entries = {}
do
  local list = assert(io.open(os.getenv("SOAK_REQUESTS") or "(SOAK_REQUESTS is not set)"))
  for line in list:lines() do
    local name, class, route, expect, path =
      line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
    local file = assert(io.open(path, "rb"))
    entries[#entries + 1] = {name = name, class = class, route = route, expect = expect,
                             request = file:read("*a")}
    file:close()
  end
  list:close()
end

-- setup() runs in the main Lua state once per thread; done() reads each thread's counters back.
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

-- Each thread starts at its own place in the cycle (args[1] is the thread count), so the threads
-- do not send the same request at the same time. The main state, which wrk asks for one request
-- to check it, starts at 1: GET /healthz.
local next_index = 1
function init(args)
  next_index = 1 + math.floor(id * #entries / tonumber(args[1] or 1))
end

function request()
  local entry = entries[next_index]
  next_index = next_index % #entries + 1
  return entry.request
end

counts = {} -- "<n> <status>" -> count; a global, so that thread:get can read it
function response(status, headers, body)
  local n = (headers["X-Request-Id"] or ""):match("^soak%-(%d+)$") or "?"
  local key = n .. " " .. status
  counts[key] = (counts[key] or 0) + 1
end

-- Whether status is one of the expected ones ("200", "2xx", "201|409").
local function expected(status, expect)
  local s = tostring(status)
  for alternative in expect:gmatch("[^|]+") do
    local same_class = alternative:sub(2) == "xx" and alternative:sub(1, 1) == s:sub(1, 1)
    if alternative == s or same_class then
      return true
    end
  end
  return false
end

local function add(t, key, n) t[key] = (t[key] or 0) + n end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

function done(summary, latency, requests)
  local total = {} -- "<n> <status>" -> count, over all threads
  for _, thread in ipairs(threads) do
    for key, n in pairs(thread:get("counts")) do add(total, key, n) end
  end
  local results = assert(io.open(os.getenv("SOAK_RESULTS") or "(SOAK_RESULTS is not set)", "w"))
  local by_route, by_class, fives, unexpected, answered, load = {}, {}, {}, {}, 0, {}
  for key, n in pairs(total) do
    local index, status = key:match("^(%S+) (%d+)$")
    status = tonumber(status)
    local e = entries[tonumber(index)]
      or {name = "(no X-Request-Id)", class = "?", route = "?", expect = "?"}
    results:write(string.format("%s\t%s\t%s\t%s\t%d\t%d\n",
                                e.name, e.class, e.route, e.expect, status, n))
    answered = answered + n
    local class = math.floor(status / 100) .. "xx"
    by_route[e.route] = by_route[e.route] or {}
    add(by_route[e.route], class, n)
    add(by_route[e.route], "all", n)
    by_class[e.class] = by_class[e.class] or {}
    add(by_class[e.class], class, n)
    add(by_class[e.class], "all", n)
    if status >= 500 then
      fives[status] = fives[status] or {}
      add(fives[status], e.class .. ": " .. e.name, n)
    end
    -- 429 (queue full) and 503 (deadline passed) answer load, not the request.
    if status == 429 or status == 503 then
      add(load, status, n)
    elseif not expected(status, e.expect) then
      local what = string.format("%s: %s (%s), expected %s, got %d",
                                 e.class, e.name, e.route, e.expect, status)
      add(unexpected, what, n)
    end
  end
  results:close()

  local columns = {"all", "2xx", "3xx", "4xx", "5xx"}
  local function table_of(title, rows)
    io.write(string.format("\n== %s\n%-44s", title, ""))
    for _, c in ipairs(columns) do io.write(string.format("%9s", c)) end
    io.write("\n")
    for _, key in ipairs(sorted_keys(rows)) do
      io.write(string.format("%-44s", key))
      for _, c in ipairs(columns) do io.write(string.format("%9d", rows[key][c] or 0)) end
      io.write("\n")
    end
  end
  table_of("answers by route", by_route)
  table_of("answers by kind of request", by_class)

  io.write("\n== 5xx answers, by status and request\n")
  if next(fives) == nil then io.write("none\n") end
  for _, status in ipairs(sorted_keys(fives)) do
    for _, who in ipairs(sorted_keys(fives[status])) do
      io.write(string.format("%d x %d  %s\n", status, fives[status][who], who))
    end
  end
  io.write("\n== answers outside a request's expected statuses (429 and 503 apart)\n")
  if next(unexpected) == nil then io.write("none\n") end
  for _, what in ipairs(sorted_keys(unexpected)) do
    io.write(string.format("%6d x %s\n", unexpected[what], what))
  end

  local e = summary.errors
  io.write(string.format("\n== totals\n%d requests answered in %.1f s (%.1f/s); socket errors: "
                         .. "connect %d, read %d, write %d, timeout %d\n",
                         answered, summary.duration / 1e6, answered / (summary.duration / 1e6),
                         e.connect, e.read, e.write, e.timeout))
  io.write(string.format("load answers: %d x 429 (queue full), %d x 503 (deadline passed)\n",
                         load[429] or 0, load[503] or 0))
  io.write(string.format("latency (all requests): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                         latency:percentile(50) / 1000, latency:percentile(99) / 1000,
                         latency.max / 1000))
end
