#include "runtime/container_spec.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <filesystem>

#include "base/json.h"

namespace taskmesh::runtime {
namespace {

bool allDigits(const std::string& s) {
  return !s.empty() && s.size() <= 10 && std::all_of(s.begin(), s.end(), ::isdigit) &&
         std::stoull(s) <= 4294967295ULL;
}

// The container's override from RunTask's overrides.containerOverrides, or null.
const nlohmann::json* containerOverride(const nlohmann::json& overrides, const std::string& name) {
  if (!overrides.is_object()) return nullptr;
  auto it = overrides.find("containerOverrides");
  if (it == overrides.end() || !it->is_array()) return nullptr;
  for (const auto& o : *it) {
    if (o.is_object() && stringField(o, "name") == name) return &o;
  }
  return nullptr;
}

std::vector<std::string> stringArray(const nlohmann::json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

// The ECS API is served by the same listener as the metadata endpoint, at its root.
std::string ecsEndpoint(const std::string& metadataBaseUrl) {
  auto v4 = metadataBaseUrl.rfind("v4/");
  return v4 == std::string::npos ? metadataBaseUrl : metadataBaseUrl.substr(0, v4);
}

std::vector<std::string> environment(const ContainerSpecInputs& in, const nlohmann::json* ov) {
  const auto& def = in.definition.containers[in.index];
  const auto& rec = in.task.containers[in.index];
  std::vector<std::pair<std::string, std::string>> vars = {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", "/root"},
      {"ECS_CONTAINER_METADATA_URI_V4", in.metadataBaseUrl + rec.metadataId},
      {"AWS_REGION", in.region},
      {"AWS_DEFAULT_REGION", in.region},
      // The AWS SDKs (and discover-servers) reach this runtime's ECS API instead of AWS; it
      // does not check signatures, so any credentials do. A container may set its own.
      {"AWS_ENDPOINT_URL_ECS", ecsEndpoint(in.metadataBaseUrl)},
      {"AWS_ACCESS_KEY_ID", "taskmesh-local"},
      {"AWS_SECRET_ACCESS_KEY", "taskmesh-local"},
  };
  auto set = [&](const std::string& name, const std::string& value) {
    for (auto& [n, v] : vars) {
      if (n == name) {
        v = value;
        return;
      }
    }
    vars.emplace_back(name, value);
  };
  for (const auto& kv : def.environment) set(kv.name, kv.value);
  if (ov && ov->contains("environment") && (*ov)["environment"].is_array()) {
    for (const auto& kv : (*ov)["environment"]) {
      std::string n = stringField(kv, "name");
      if (!n.empty()) set(n, stringField(kv, "value"));
    }
  }
  std::vector<std::string> env;
  for (const auto& [n, v] : vars) env.push_back(n + "=" + v);
  return env;
}

Result<std::vector<BindMount>> mountsOf(const ContainerSpecInputs& in,
                                        const ecs::ContainerDefinition& def, bool forceReadOnly) {
  std::vector<BindMount> mounts;
  for (const auto& mp : def.mountPoints) {
    const ecs::Volume* vol = nullptr;
    for (const auto& v : in.definition.volumes) {
      if (v.name == mp.sourceVolume) vol = &v;
    }
    if (!vol) {
      return makeError(ErrorCode::kInvalidArgument,
                       "container " + def.name + ": unknown volume " + mp.sourceVolume);
    }
    std::string source =
        vol->hostSourcePath.empty() ? in.taskDir + "/volumes/" + vol->name : vol->hostSourcePath;
    std::error_code ec;
    std::filesystem::create_directories(source, ec);
    if (ec) {
      return makeError(ErrorCode::kIo, "container " + def.name + ": cannot create volume " +
                                           vol->name + " at " + source + ": " + ec.message());
    }
    mounts.push_back({source, mp.containerPath, mp.readOnly || forceReadOnly});
  }
  return mounts;
}

}  // namespace

Result<std::pair<uid_t, gid_t>> resolveUser(const std::string& user) {
  if (user.empty()) return std::pair<uid_t, gid_t>{0, 0};
  auto colon = user.find(':');
  std::string u = user.substr(0, colon);
  std::string g = colon == std::string::npos ? "" : user.substr(colon + 1);
  uid_t uid = 0;
  gid_t gid = 0;
  if (allDigits(u)) {
    uid = static_cast<uid_t>(std::stoull(u));
    // Docker's rule: the primary group of the uid's passwd entry, else 0.
    struct passwd pw, *found = nullptr;
    std::vector<char> buf(16384);
    if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) gid = pw.pw_gid;
  } else {
    struct passwd pw, *found = nullptr;
    std::vector<char> buf(16384);
    if (getpwnam_r(u.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
      return makeError(ErrorCode::kInvalidArgument, "user \"" + u + "\" is not in /etc/passwd");
    }
    uid = pw.pw_uid;
    gid = pw.pw_gid;
  }
  if (allDigits(g)) {
    gid = static_cast<gid_t>(std::stoull(g));
  } else if (!g.empty()) {
    struct group gr, *found = nullptr;
    std::vector<char> buf(16384);
    if (getgrnam_r(g.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found) {
      return makeError(ErrorCode::kInvalidArgument, "group \"" + g + "\" is not in /etc/group");
    }
    gid = gr.gr_gid;
  }
  return std::pair<uid_t, gid_t>{uid, gid};
}

Result<ContainerSpec> makeContainerSpec(const ContainerSpecInputs& in) {
  const auto& def = in.definition.containers[in.index];
  const auto& rec = in.task.containers[in.index];
  const nlohmann::json* ov = containerOverride(in.task.overrides, def.name);
  ContainerSpec spec;
  spec.id = rec.runtimeId;
  spec.bundleDir = in.bundlesDir + "/" + rec.runtimeId;
  spec.args = def.entryPoint;
  auto command = def.command;
  if (ov && ov->contains("command")) command = stringArray((*ov)["command"]);
  spec.args.insert(spec.args.end(), command.begin(), command.end());
  if (spec.args.empty()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "container " + def.name +
                         " has neither entryPoint nor command (the host image has no default)");
  }
  spec.env = environment(in, ov);
  spec.cwd = def.workingDirectory.empty() ? "/" : def.workingDirectory;
  auto ids = resolveUser(def.user);
  if (!ids)
    return makeError(ErrorCode::kInvalidArgument,
                     "container " + def.name + ": " + ids.error().message);
  spec.uid = ids->first;
  spec.gid = ids->second;
  spec.readonlyRootfs = def.readonlyRootFilesystem;
  auto own = mountsOf(in, def, false);
  if (!own) return makeError(own.error());
  spec.mounts = *own;
  for (const auto& vf : def.volumesFrom) {
    const auto* source = in.definition.container(vf.sourceContainer);
    if (!source) continue;  // validated at registration
    auto inherited = mountsOf(in, *source, vf.readOnly);
    if (!inherited) return makeError(inherited.error());
    spec.mounts.insert(spec.mounts.end(), inherited->begin(), inherited->end());
  }
  spec.netnsPath = in.netnsPath;
  spec.logPath = in.logPath;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(in.logPath).parent_path(), ec);
  if (ec) return makeError(ErrorCode::kIo, "cannot create " + in.logPath + ": " + ec.message());
  spec.hostname = ipHostLabel(in.task.ipv4);
  return spec;
}

}  // namespace taskmesh::runtime
