-- wrk script: POST one JPEG to /v1/augment with RandAugment, asking for the image back.
-- The image path comes from AUGSERVE_BENCH_IMAGE.
local file = assert(io.open(os.getenv("AUGSERVE_BENCH_IMAGE"), "rb"))
wrk.method = "POST"
wrk.path = "/v1/augment?policy=randaugment"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["Accept"] = "image/jpeg"

-- Count answers that are not 200, so a run full of errors cannot pass for a fast one.
local failures = 0
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("non-200 responses: %d\n", failures))
end
