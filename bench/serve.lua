-- serve.lua — wrk script for bench/serve.sh: POSTs /v1/search with a bearer token, cycling
-- through the queries in $KB_QUERIES (one a line; each wrk thread starts at its own offset) in
-- mode $KB_MODE with k = $KB_K (default 10). Counts replies by HTTP status and prints one JSON
-- line "RESULT {...}" at the end: requests, seconds, statuses, socket errors, latency
-- percentiles in ms.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

local bodies = {}
local next_body = 1
statuses = {}

function init(args)
   local mode = os.getenv("KB_MODE") or "hybrid"
   local k = tonumber(os.getenv("KB_K") or "10")
   local f = assert(io.open(os.getenv("KB_QUERIES"), "r"))
   for line in f:lines() do
      -- the generator emits [a-z0-9 -] only, so no JSON escaping is needed
      if #line > 0 then
         table.insert(bodies, string.format('{"query":"%s","k":%d,"mode":"%s"}', line, k, mode))
      end
   end
   f:close()
   assert(#bodies > 0, "no queries in " .. os.getenv("KB_QUERIES"))
   next_body = ((id or 1) * 7919) % #bodies + 1
   wrk.method = "POST"
   wrk.headers["Authorization"] = "Bearer " .. os.getenv("KB_TOKEN")
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   local body = bodies[next_body]
   next_body = next_body % #bodies + 1
   return wrk.format("POST", "/v1/search", nil, body)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local merged = {}
   for _, t in ipairs(threads) do
      local s = t:get("statuses")
      for code, n in pairs(s or {}) do
         merged[code] = (merged[code] or 0) + n
      end
   end
   local parts = {}
   for code, n in pairs(merged) do
      table.insert(parts, string.format('"%d":%d', code, n))
   end
   local e = summary.errors
   io.write(string.format(
      'RESULT {"requests":%d,"seconds":%.3f,"rps":%.1f,"statuses":{%s},' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
      '"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,"mean_ms":%.2f}\n',
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      table.concat(parts, ","), e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
      latency.max / 1e3, latency.mean / 1e3))
end
