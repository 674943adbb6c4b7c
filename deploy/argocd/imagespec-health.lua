-- Argo CD resource health for primehub.io/ImageSpec, read from the operator's kstatus conditions
-- (Ready, Reconciling, Stalled; each with reason, message and observedGeneration).
--   Healthy      Ready is True for the current generation: its image is built.
--   Progressing  no status yet, a generation the operator has not seen, or a build in progress.
--   Suspended    the build was cancelled (spec.cancel: true).
--   Degraded     Stalled: the ImageSpec needs a change (invalid spec, missing secret, failed build).
local hs = {status = "Progressing", message = "Waiting for the image-builder operator"}

local function condition(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then return c end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    if reason ~= "" then return reason .. ": " .. c.message end
    return c.message
  end
  return reason
end

if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local stalled = condition(conditions, "Stalled")
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")

if stalled ~= nil and stalled.status == "True" then
  if stalled.reason == "Cancelled" then
    hs.status = "Suspended"
  else
    hs.status = "Degraded"
  end
  hs.message = describe(stalled)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
elseif ready ~= nil then
  hs.message = describe(ready)
end
return hs
