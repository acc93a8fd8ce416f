-- wrk script shared by every HTTP load in bench/run_all, so that taskmesh and etcd see the
-- same client. Usage: wrk ... -s bench/load.lua URL -- MODE [ARG]
--
-- MODE            request
-- tm-kv           PUT /v1/kv/bench/<t>-<n>            small value (16 bytes)
-- etcd-kv         POST /v3/kv/put                     same key and value, base64 in JSON
-- tm-register     PUT /v1/catalog/register            node reg-<t>-<n>, one service
-- etcd-register   POST /v3/kv/put                     key reg/api/<node>, the same JSON as value
-- get             GET of the URL's path               (health and range reads use this)
-- etcd-range      POST /v3/kv/range                   every key below reg/<ARG>/ (a service)
--
-- done() prints one line that run_all parses:
--   RESULT requests=N duration_us=N rps=F p50_us=N p99_us=N max_us=N non2xx=N sockerr=N

local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
  local out = {}
  local len = #s
  for i = 1, len, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1) ..
        (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local function registration(node, svc)
  return '{"Node":"' .. node .. '","Address":"127.0.0.1","Datacenter":"dc1",' ..
      '"NodeMeta":{"bench":"1"},' ..
      '"Service":{"ID":"' .. svc .. '","Service":"' .. svc .. '","Port":8080,"Tags":["v1"]},' ..
      '"Check":{"CheckID":"service:' .. svc .. '","Name":"' .. svc .. ' alive",' ..
      '"Status":"passing","ServiceID":"' .. svc .. '"}}'
end

local function etcdPut(key, value)
  return wrk.format("POST", "/v3/kv/put", nil,
      '{"key":"' .. b64(key) .. '","value":"' .. b64(value) .. '"}')
end

local value = "0123456789abcdef"
local mode, tid, n, rangeBody

function init(args)
  mode = args[1] or "get"
  if mode == "etcd-range" then
    -- Every key below reg/<service>/: range_end is the prefix with its last byte plus one.
    local prefix = "reg/" .. (args[2] or "s-0") .. "/"
    local rangeEnd = prefix:sub(1, -2) .. string.char(prefix:byte(-1) + 1)
    rangeBody = '{"key":"' .. b64(prefix) .. '","range_end":"' .. b64(rangeEnd) .. '"}'
  end
  tid = wrk.thread:get("tid")
  n = 0
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  if mode == "tm-kv" then
    n = n + 1
    return wrk.format("PUT", "/v1/kv/bench/" .. tid .. "-" .. n, nil, value)
  elseif mode == "etcd-kv" then
    n = n + 1
    return etcdPut("bench/" .. tid .. "-" .. n, value)
  elseif mode == "tm-register" then
    n = n + 1
    return wrk.format("PUT", "/v1/catalog/register", nil, registration("reg-" .. tid .. "-" .. n, "api"))
  elseif mode == "etcd-register" then
    n = n + 1
    local node = "reg-" .. tid .. "-" .. n
    return etcdPut("reg/api/" .. node, registration(node, "api"))
  elseif mode == "etcd-range" then
    return wrk.format("POST", "/v3/kv/range", nil, rangeBody)
  end
  return wrk.format("GET", nil)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d non2xx=%d sockerr=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), latency.max, e.status,
      e.connect + e.read + e.write + e.timeout))
end
