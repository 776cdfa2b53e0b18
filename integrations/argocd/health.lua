-- Argo CD health check for vigil.dev/ModelDeployment.
-- The operator's status is the only source: generation first (as Argo Rollouts' check does),
-- then Degraded (rolled back, failed, stalled), Suspended (paused, awaiting approval),
-- Healthy (the desired version serves all traffic), else Progressing.
-- Uses no string-library calls, so it runs under any Lua Argo CD embeds.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Vigil operator to observe the ModelDeployment"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Vigil operator to observe generation " .. tostring(generation)
  return hs
end

local phase = obj.status.phase or ""
local message = obj.status.message or ""
local stalled = condition("Stalled")
local progressing = condition("Progressing")

if phase == "RolledBack" or phase == "RollingBack" or phase == "Failed" or is_true(stalled) then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. said(stalled, message)
  return hs
end

if phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused: " .. message
  return hs
end

if is_true(progressing) and progressing.reason == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = "Awaiting approval: " .. said(progressing, message)
  return hs
end

local spec_version = nil
if obj.spec ~= nil then
  spec_version = obj.spec.version
end
if phase == "Succeeded" and is_true(condition("Ready")) and obj.status.stableVersion == spec_version
    and obj.status.canaryVersion == nil then
  hs.status = "Healthy"
  hs.message = "Serving " .. tostring(spec_version)
  return hs
end

hs.status = "Progressing"
if phase == "" then
  hs.message = "Waiting for the Vigil operator"
else
  hs.message = phase .. ": " .. said(progressing, message)
end
return hs
