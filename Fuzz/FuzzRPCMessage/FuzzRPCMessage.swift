// libFuzzer target: the RPC message header and credentials, through the
// functions the server calls on every record: RPCMessage(record:), then for a
// call RPCDispatcher.checkCredential (AUTH_NONE, AUTH_SYS's authsys_parms).
//
// Input: the record (without its record mark), as the decoder hands it on.
// Checked beyond "no crash": whatever decodes re-encodes to bytes that decode
// to the same message again (encode . decode is idempotent), and an AUTH_SYS
// credential that checks out re-encodes to one that decodes equal.
import FuzzDriver
import NIOCore
import ONCRPC
import XDR

func encoded(_ message: RPCMessage) -> ByteBuffer {
    var buffer = ByteBuffer()
    message.encode(xdr: &buffer)
    return buffer
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRPCMessage(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let record = ByteBuffer(bytes: UnsafeRawBufferPointer(start: count > 0 ? start : nil, count: count))
    guard let message = try? RPCMessage(record: record) else { return 0 }

    let once = encoded(message)
    guard let again = try? RPCMessage(record: once) else {
        preconditionFailure("a decoded message does not decode once re-encoded: \(once.readableBytesView.map { $0 })")
    }
    precondition(encoded(again) == once, "encode(decode(encode(m))) differs from encode(m)")
    precondition(again.xid == message.xid)

    if case .call(_, _, _, _, _, let credential, let verifier, _) = message {
        switch RPCDispatcher.checkCredential(credential, verifier: verifier) {
        case .success(.sys(let parameters)):
            let reencoded = parameters.opaqueAuth
            precondition(reencoded.flavor == RPCAuthFlavor.sys)
            let decoded = try? AuthSysParameters(credentialBody: reencoded.body)
            precondition(decoded == parameters, "AUTH_SYS credential does not survive a round trip")
            precondition(parameters.gids.count <= AuthSysParameters.maxGroups)
            precondition(parameters.machineName.count <= AuthSysParameters.maxMachineNameLength)
        case .success(.none):
            precondition(credential.flavor == RPCAuthFlavor.none)
        case .failure:
            break
        }
    }
    return 0
}

/// The entry point SwiftPM links as `main`: libFuzzer's driver, with this target.
@_cdecl("FuzzRPCMessage_main")
public func fuzzRPCMessageMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzRPCMessage)
}
