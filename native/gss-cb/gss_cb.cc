// impp_gss_cb: the smallest GSS-API binding impp needs to bind a Kerberos login to its TLS
// channel (RFC 5801 §5). The `kerberos` npm package calls gss_accept_sec_context with
// GSS_C_NO_CHANNEL_BINDINGS; this addon passes the GS2 channel bindings on both sides and reports
// whether the acceptor saw them match (GSS_C_CHANNEL_BOUND_FLAG, MIT krb5 >= 1.19).
//
// Exposed (all synchronous; the initiator's first step may talk to the KDC and block briefly):
//   accept(service, token, appData) -> { principal, output, flags }
//   new Initiator(service, appData, flags).step(tokenOrNull) -> { output, complete }
// Errors are thrown as JS Errors carrying the GSS major/minor status texts (never token bytes).
#include <napi.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <gssapi/gssapi_ext.h>
#include <string>
#include <cstring>

namespace {

std::string StatusText(OM_uint32 code, int type) {
  std::string out;
  OM_uint32 minor = 0, ctx = 0;
  for (int i = 0; i < 8; i++) {
    gss_buffer_desc msg = GSS_C_EMPTY_BUFFER;
    gss_display_status(&minor, code, type, GSS_C_NO_OID, &ctx, &msg);
    if (!out.empty()) out += "; ";
    out.append(static_cast<const char*>(msg.value), msg.length);
    gss_release_buffer(&minor, &msg);
    if (ctx == 0) break;
  }
  return out;
}

Napi::Value ThrowGss(Napi::Env env, const char* what, OM_uint32 major, OM_uint32 minor) {
  std::string text = std::string(what) + ": " + StatusText(major, GSS_C_GSS_CODE);
  if (minor != 0) text += " (" + StatusText(minor, GSS_C_MECH_CODE) + ")";
  Napi::Error::New(env, text).ThrowAsJavaScriptException();
  return env.Undefined();
}

// RFC 5801 §5: address types 0, empty addresses, application data = GS2 header (without the
// non-standard flag) || channel-binding data.
struct Bindings {
  gss_channel_bindings_struct cb;
  std::string data;
  explicit Bindings(const Napi::Buffer<uint8_t>& app) : data(reinterpret_cast<const char*>(app.Data()), app.Length()) {
    std::memset(&cb, 0, sizeof cb);
    cb.initiator_addrtype = GSS_C_AF_UNSPEC;
    cb.acceptor_addrtype = GSS_C_AF_UNSPEC;
    cb.application_data.length = data.size();
    cb.application_data.value = data.empty() ? nullptr : &data[0];
  }
};

bool ImportService(Napi::Env env, const std::string& service, gss_name_t* name) {
  OM_uint32 minor = 0;
  gss_buffer_desc buf{service.size(), const_cast<char*>(service.data())};
  OM_uint32 major = gss_import_name(&minor, &buf, GSS_C_NT_HOSTBASED_SERVICE, name);
  if (GSS_ERROR(major)) {
    ThrowGss(env, "gss_import_name", major, minor);
    return false;
  }
  return true;
}

Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 || !info[0].IsString() || !info[1].IsBuffer() || !info[2].IsBuffer()) {
    Napi::TypeError::New(env, "accept(service, token, appData)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string service = info[0].As<Napi::String>().Utf8Value();
  auto token = info[1].As<Napi::Buffer<uint8_t>>();
  Bindings bindings(info[2].As<Napi::Buffer<uint8_t>>());

  OM_uint32 minor = 0, major = 0;
  gss_name_t server = GSS_C_NO_NAME;
  if (!ImportService(env, service, &server)) return env.Undefined();
  gss_cred_id_t creds = GSS_C_NO_CREDENTIAL;
  major = gss_acquire_cred(&minor, server, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_ACCEPT, &creds, nullptr, nullptr);
  gss_release_name(&minor, &server);
  if (GSS_ERROR(major)) return ThrowGss(env, "gss_acquire_cred", major, minor);

  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_buffer_desc in{token.Length(), token.Data()};
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
  gss_name_t client = GSS_C_NO_NAME;
  gss_OID mech = GSS_C_NO_OID;
  OM_uint32 flags = 0;
  OM_uint32 acc_minor = 0;
  major = gss_accept_sec_context(&acc_minor, &ctx, creds, &in, &bindings.cb, &client, &mech, &out, &flags, nullptr, nullptr);
  gss_release_cred(&minor, &creds);
  if (GSS_ERROR(major)) {
    if (ctx != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
    gss_release_buffer(&minor, &out);
    return ThrowGss(env, "gss_accept_sec_context", major, acc_minor);
  }
  bool complete = major == GSS_S_COMPLETE;
  gss_buffer_desc display = GSS_C_EMPTY_BUFFER;
  OM_uint32 dmajor = gss_display_name(&minor, client, &display, nullptr);
  Napi::Object result = Napi::Object::New(env);
  if (!GSS_ERROR(dmajor)) {
    result.Set("principal", Napi::String::New(env, static_cast<const char*>(display.value), display.length));
  }
  result.Set("output", Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(out.value), out.length));
  result.Set("flags", Napi::Number::New(env, flags));
  result.Set("complete", Napi::Boolean::New(env, complete));
  gss_release_buffer(&minor, &display);
  gss_release_buffer(&minor, &out);
  gss_release_name(&minor, &client);
  if (ctx != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
  if (GSS_ERROR(dmajor)) return ThrowGss(env, "gss_display_name", dmajor, minor);
  return result;
}

class Initiator : public Napi::ObjectWrap<Initiator> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Initiator", {InstanceMethod("step", &Initiator::Step)});
  }

  explicit Initiator(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Initiator>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsString() || !info[1].IsBuffer() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "new Initiator(service, appData, flags)").ThrowAsJavaScriptException();
      return;
    }
    service_ = info[0].As<Napi::String>().Utf8Value();
    auto app = info[1].As<Napi::Buffer<uint8_t>>();
    app_.assign(reinterpret_cast<const char*>(app.Data()), app.Length());
    flags_ = info[2].As<Napi::Number>().Uint32Value();
  }

  ~Initiator() override {
    OM_uint32 minor = 0;
    if (ctx_ != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx_, GSS_C_NO_BUFFER);
    if (target_ != GSS_C_NO_NAME) gss_release_name(&minor, &target_);
  }

 private:
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (complete_) {
      Napi::Error::New(env, "context already complete").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (target_ == GSS_C_NO_NAME && !ImportService(env, service_, &target_)) return env.Undefined();
    gss_buffer_desc in = GSS_C_EMPTY_BUFFER;
    if (info.Length() >= 1 && info[0].IsBuffer()) {
      auto token = info[0].As<Napi::Buffer<uint8_t>>();
      in.length = token.Length();
      in.value = token.Data();
    }
    gss_channel_bindings_struct cb;
    std::memset(&cb, 0, sizeof cb);
    cb.application_data.length = app_.size();
    cb.application_data.value = app_.empty() ? nullptr : &app_[0];
    OM_uint32 minor = 0, ret_flags = 0;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    gss_OID krb5 = const_cast<gss_OID>(gss_mech_krb5);
    OM_uint32 major = gss_init_sec_context(&minor, GSS_C_NO_CREDENTIAL, &ctx_, target_, krb5, flags_, 0, &cb,
                                           in.length == 0 ? GSS_C_NO_BUFFER : &in, nullptr, &out, &ret_flags, nullptr);
    if (GSS_ERROR(major)) {
      gss_release_buffer(&minor, &out);
      return ThrowGss(env, "gss_init_sec_context", major, minor);
    }
    complete_ = major == GSS_S_COMPLETE;
    Napi::Object result = Napi::Object::New(env);
    result.Set("output", Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(out.value), out.length));
    result.Set("complete", Napi::Boolean::New(env, complete_));
    result.Set("flags", Napi::Number::New(env, ret_flags));
    gss_release_buffer(&minor, &out);
    return result;
  }

  std::string service_;
  std::string app_;
  OM_uint32 flags_ = 0;
  gss_name_t target_ = GSS_C_NO_NAME;
  gss_ctx_id_t ctx_ = GSS_C_NO_CONTEXT;
  bool complete_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("accept", Napi::Function::New(env, Accept));
  exports.Set("Initiator", Initiator::Define(env));
  exports.Set("GSS_C_MUTUAL_FLAG", Napi::Number::New(env, GSS_C_MUTUAL_FLAG));
  exports.Set("GSS_C_SEQUENCE_FLAG", Napi::Number::New(env, GSS_C_SEQUENCE_FLAG));
  exports.Set("GSS_C_CHANNEL_BOUND_FLAG", Napi::Number::New(env, GSS_C_CHANNEL_BOUND_FLAG));
  return exports;
}

}  // namespace

NODE_API_MODULE(impp_gss_cb, Init)
