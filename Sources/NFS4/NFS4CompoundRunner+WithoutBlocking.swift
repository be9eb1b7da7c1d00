import HostFS
import NFS4Wire
import NFSCore

// The operations a COMPOUND may run on the event loop (NFS4Program's
// `compound`): those HostFS can answer without blocking, through the same
// calls NFSv3 uses (`readWithoutBlocking` and the rest) and the same limits
// (`EventLoopLimits`). Every other operation goes to the thread pool.
extension NFS4CompoundRunner {
    /// Whether `performWithoutBlocking` could run `operation` at all: false for
    /// the operations and sizes it always declines. A COMPOUND holding one goes
    /// to the pool whole, SEQUENCE included: beginning it on the event loop
    /// would only move work there (the slot, the digest, the filehandles) that
    /// the pool does beside it, with the same one hop.
    static func mayRunWithoutBlocking(_ operation: NFS4Operation) -> Bool {
        switch operation {
        case .sequence, .getfh, .savefh, .restorefh, .putfh, .getattr, .lookup:
            return true
        case .read(let args):
            return args.count <= EventLoopLimits.maximumRead
        case .write(let args):
            return args.data.readableBytes <= Int(EventLoopLimits.maximumWrite)
        default:
            return false
        }
    }

    /// One operation on the event loop: the result `perform` would give, or nil
    /// when it could block or fails. Nil leaves nothing done and nothing changed
    /// (filehandles, stateids, files); the pool then runs the operation with
    /// `perform`, the one place errors become results. Operations that only
    /// move filehandles run as `perform` runs them: they make no system call.
    mutating func performWithoutBlocking(_ operation: NFS4Operation) -> NFS4Result? {
        guard Self.mayRunWithoutBlocking(operation) else { return nil }
        switch operation {
        case .getfh, .savefh, .restorefh:
            return perform(operation)
        case .putfh(let handle):
            // An export's object; a pseudo directory's handle is the pool's (its node may open an export root).
            guard fs.pseudoHandleName(handle.bytes) == nil, let h = try? fs.decodeHandle(handle.bytes) else { return nil }
            current = .object(h)
            return .status(.putfh, .ok)
        case .getattr(let request):
            guard request.intersection(NFS4Attribute.writeOnly).isEmpty, let node = current,
                  let fattr = try? attributes(of: node, requested: request, withoutBlocking: true) else { return nil }
            return .getattr(.ok(fattr))
        case .lookup(let name):
            guard case .object(let h)? = current, (try? Self.checkLookupName(name)) != nil,
                  let call = try? authorize(h, modifies: false),
                  let found = (try? fs.lookupWithoutBlocking(h, name.bytes, as: call.credentials)) ?? nil,
                  case .found(let node) = found else {
                return nil
            }
            current = .object(node.handle)
            return .status(.lookup, .ok)
        case .read(let args):
            return (try? read(args, withoutBlocking: true)) ?? nil
        case .write(let args):
            guard fs.servesMemoryBackedExport else { return nil }
            return (try? write(args, withoutBlocking: true)) ?? nil
        default:
            return nil
        }
    }
}
