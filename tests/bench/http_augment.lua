-- wrk script: POST one JPEG to /v1/augment with RandAugment, asking for the image back.
-- The image path comes from AUGSERVE_BENCH_IMAGE.
local file = assert(io.open(os.getenv("AUGSERVE_BENCH_IMAGE"), "rb"))
wrk.method = "POST"
wrk.path = "/v1/augment?policy=randaugment"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["Accept"] = "image/jpeg"

-- Count answers that are not 200, so a run full of errors cannot pass for a fast one. Each wrk
-- thread has a Lua state of its own: response() counts in its thread, and done(), in the main
-- state, reads every thread's count back through the handles setup() kept.
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

failures = 0
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("failures")
  end
  io.write(string.format("non-200 responses: %d\n", total))
  io.write(string.format("p99 latency: %.2f ms\n", latency:percentile(99.0) / 1000))
end
