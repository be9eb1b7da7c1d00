import Exports
import Glibc
import HostFS
import NFS4State
import NFS4Wire
import NFSCore
import NIOCore

// The operations of a COMPOUND other than SEQUENCE (RFC 8881 §18, RFC 7862 §15).
extension NFS4CompoundRunner {
    mutating func execute(_ operation: NFS4Operation) throws -> NFS4Result {
        switch operation {
        case .sequence:
            throw NFS4Status.sequencePos
        case .exchangeID(let args): return try exchangeID(args)
        case .createSession(let args): return try createSession(args)
        case .destroySession(let id): return try destroySession(id)
        case .destroyClientID(let id): return try destroyClientID(id)
        case .bindConnToSession(let args): return try bindConnToSession(args)
        case .backchannelCtl(let args): return try backchannelCtl(args)
        case .reclaimComplete(let oneFS):
            try state.reclaimComplete(try requireSession(), oneFS: oneFS)
            return .status(.reclaimComplete, .ok)
        case .secinfoNoName(let style):
            let node = try currentNode()
            if style == .parent, case .pseudo(let path) = node, path.isEmpty { throw NFS4Status.noent }
            current = nil  // §18.45.3: SECINFO_NO_NAME consumes the current filehandle.
            return .secinfoNoName(.ok(Self.flavors))
        case .secinfo(let name):
            _ = try lookupNode(name)
            current = nil
            return .secinfo(.ok(Self.flavors))

        case .putrootfh, .putpubfh:
            current = try pseudo().root
            return .status(operation.opcode, .ok)
        case .putfh(let handle):
            current = try pseudo().node(handle: handle)
            return .status(.putfh, .ok)
        case .getfh:
            return .getfh(.ok(pseudo().handle(try currentNode())))
        case .savefh:
            saved = try currentNode()
            return .status(.savefh, .ok)
        case .restorefh:
            guard let saved else { throw NFS4Status.restorefh }
            current = saved
            return .status(.restorefh, .ok)
        case .lookup(let name):
            current = try lookupNode(name)
            return .status(.lookup, .ok)
        case .lookupp:
            current = try lookupParent()
            return .status(.lookupp, .ok)

        case .getattr(let request):
            guard request.intersection(NFS4Attribute.writeOnly).isEmpty else { throw NFS4Status.inval }
            return .getattr(.ok(try attributes(of: try currentNode(), requested: request)))
        case .setattr(let args):
            return try setattr(args)
        case .verify(let fattr), .nverify(let fattr):
            let theirs = try NFS4Attributes(decoding: fattr, for: .verify)
            _ = theirs
            let ours = try attributes(of: try currentNode(), requested: fattr.mask)
            guard ours.mask.trimmed() == fattr.mask.trimmed() else { throw NFS4Status.attrnotsupp }
            let same = ours.values.readableBytesView.elementsEqual(fattr.values.readableBytesView)
            if case .verify = operation { if !same { throw NFS4Status.notSame } } else if same { throw NFS4Status.same }
            return .status(operation.opcode, .ok)
        case .access(let requested):
            return try access(requested)

        case .open(let args): return try open(args)
        case .openDowngrade(let args): return try openDowngrade(args)
        case .close(let args): return try close(args)
        case .read(let args): return try read(args)
        case .write(let args): return try write(args)
        case .commit(let args):
            let (h, call) = try object()
            let (verifier, _) = try fs.commit(h, offset: args.offset, count: args.count, as: call.credentials)
            return .commit(.ok(Verifier4(verifier)))

        case .create(let args): return try create(args)
        case .remove(let name): return try remove(name)
        case .rename(let args): return try rename(args)
        case .link(let name):
            let (dir, call) = try object(modifies: true)
            let source = try savedObject(sameExportAs: dir)
            let (_, wcc) = try fs.link(source, to: dir, name.bytes, as: call.credentials)
            return .link(.ok(NFS4AttributeMapping.changeInfo(wcc)))
        case .readdir(let args): return try readdir(args)
        case .readlink:
            let (h, call) = try object()
            let (target, attributes) = try fs.readlink(h, as: call.credentials)
            guard attributes.type == .symlink else { throw NFS4Status.inval }
            return .readlink(.ok(NFS4Name(target)))

        case .lock(let args): return try lock(args)
        case .lockt(let args): return try lockt(args)
        case .locku(let args): return try locku(args)
        case .testStateid(let ids): return try testStateIDs(ids)
        case .freeStateid(let id): return try freeStateID(id)
        case .delegreturn(let id): return try delegReturn(id)

        case .seek(let args): return try seek(args)
        case .allocate(let args), .deallocate(let args): return try allocate(args, deallocate: operation.opcode == .deallocate)
        case .copy(let args): return try copy(args)
        case .clone(let args): return try clone(args)
        case .unsupported:
            throw NFS4Status.notsupp
        }
    }

    // MARK: Names

    /// LOOKUP's refusals of a name before any filesystem call.
    static func checkLookupName(_ name: NFS4Name) throws {
        guard !name.bytes.isEmpty else { throw NFS4Status.inval }
        guard name.bytes != [0x2E], name.bytes != [0x2E, 0x2E], !name.bytes.contains(0x2F), !name.bytes.contains(0) else {
            throw NFS4Status.badname
        }
    }

    mutating func lookupNode(_ name: NFS4Name) throws -> NFS4Node {
        try Self.checkLookupName(name)
        switch try currentNode() {
        case .pseudo(let path):
            do {
                return try pseudo().node(at: path + [name.bytes])
            } catch NFS4Status.access {
                // As MNT logs it: the guest's mount says it was refused, the host's log says who.
                let shown = "/" + (path + [name.bytes]).map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
                server.logger.info("NFSv4 LOOKUP \(shown) refused: \(peer) has no access")
                throw NFS4Status.access
            }
        case .object(let h):
            let call = try authorize(h, modifies: false)
            let node = try fs.lookup(h, name.bytes, as: call.credentials)
            return .object(node.handle)
        }
    }

    mutating func lookupParent() throws -> NFS4Node {
        switch try currentNode() {
        case .pseudo(let path):
            guard !path.isEmpty else { throw NFS4Status.noent }
            return try pseudo().node(at: Array(path.dropLast()))
        case .object(let h):
            let call = try authorize(h, modifies: false)
            if h == (try fs.rootHandle(exportID: h.exportID)) {
                // From an export's root back into the pseudo file system.
                guard let path = pseudo().mountPath(exportID: h.exportID), !path.isEmpty else { throw NFS4Status.noent }
                return try pseudo().node(at: Array(path.dropLast()))
            }
            let node = try fs.lookup(h, [0x2E, 0x2E], as: call.credentials)
            guard node.attributes.type == .directory else { throw NFS4Status.notdir }
            return .object(node.handle)
        }
    }

    // MARK: Attributes

    mutating func attributes(of node: NFS4Node, requested: Bitmap4) throws -> NFS4Fattr {
        try attributes(of: node, requested: requested, withoutBlocking: false)!
    }

    /// `withoutBlocking`: an object's attributes only from HostFS's
    /// `getattrWithoutBlocking`, and nil when that would block or the file
    /// system's counts (statfs) are asked for.
    mutating func attributes(of node: NFS4Node, requested: Bitmap4, withoutBlocking: Bool) throws -> NFS4Fattr? {
        switch node {
        case .pseudo(let path):
            var a = pseudo().attributes(path, epoch: state.epoch)
            a.supportedAttrs = NFS4Attribute.all
            a.filehandle = pseudo().handle(node)
            a.leaseTime = state.leaseSeconds
            a.fhExpireType = NFS4Constants.fh4Persistent
            a.linkSupport = true
            a.symlinkSupport = true
            a.namedAttr = false
            a.uniqueHandles = true
            a.rdattrError = .ok
            a.maxRead = NFS4AttributeMapping.maxIOSize
            a.maxWrite = NFS4AttributeMapping.maxIOSize
            a.maxName = 255
            a.timeDelta = NFSTime4(seconds: 0, nseconds: 1)
            a.suppattrExclcreat = NFS4AttributeMapping.exclusiveCreateAttributes
            return a.encode(requested: requested, allocator: allocator)
        case .object(let h):
            let call = try authorize(h, modifies: false)
            let needStat = !requested.intersection(NFS4AttributeMapping.fsStatAttributes).isEmpty
            let attributes: FileAttributes
            if withoutBlocking {
                guard !needStat, let a = try fs.getattrWithoutBlocking(h) else { return nil }
                attributes = a
            } else {
                attributes = try fs.getattr(h, as: call.credentials)
            }
            let stat = needStat ? try fs.fsstat(h, as: call.credentials) : nil
            return NFS4AttributeMapping.attributes(attributes, handle: h.bytes, stat: stat, leaseSeconds: state.leaseSeconds,
                                                 for: call.access.options)
                .encode(requested: requested, allocator: allocator)
        }
    }

    mutating func setattr(_ args: NFS4SetattrArgs) throws -> NFS4Result {
        let (h, call) = try object(modifies: true)
        let (set, mask) = try NFS4AttributeMapping.setAttributes(args.attributes, from: call.access.options)
        if set.size != nil {
            let stateID = try resolve(args.stateID)
            if stateID.special == nil {
                let attributes = try fs.getattr(h, as: call.credentials)
                try checkStateID(stateID, file: Self.fileKey(attributes), write: true)
            }
        }
        try willChange(h, credentials: call.credentials)
        _ = try fs.setattr(h, set, as: call.credentials)
        return .setattr(.ok, attributesSet: mask)
    }

    mutating func access(_ requested: UInt32) throws -> NFS4Result {
        let all = AccessMask.all.rawValue
        switch try currentNode() {
        case .pseudo:
            let granted = requested & (AccessMask.read.rawValue | AccessMask.lookup.rawValue | AccessMask.execute.rawValue)
            return .access(.ok(NFS4AccessResOK(supported: requested & all, access: granted)))
        case .object(let h):
            let call = try authorize(h, modifies: false)
            var (granted, _) = try fs.access(h, requested: AccessMask(rawValue: requested & all), as: call.credentials)
            if call.access.readOnly { granted.subtract([.modify, .extend, .delete]) }
            return .access(.ok(NFS4AccessResOK(supported: requested & all, access: granted.rawValue)))
        }
    }

    // MARK: Namespace

    mutating func create(_ args: NFS4CreateArgs) throws -> NFS4Result {
        let (dir, call) = try object(modifies: true)
        let (set, mask) = try NFS4AttributeMapping.setAttributes(args.attributes, from: call.access.options)
        let name = args.name.bytes
        guard !name.isEmpty else { throw NFS4Status.inval }
        let node: NodeResult
        switch args.objectType {
        case .directory: node = try fs.mkdir(dir, name, attributes: set, as: call.credentials)
        case .symlink(let target): node = try fs.symlink(dir, name, target: target.bytes, attributes: set, as: call.credentials)
        case .fifo, .socket, .blockDevice, .characterDevice:
            let kind: SpecialNode
            switch args.objectType {
            case .fifo: kind = .fifo
            case .socket: kind = .socket
            case .blockDevice(let d): kind = .blockDevice(major: d.specdata1, minor: d.specdata2)
            case .characterDevice(let d): kind = .characterDevice(major: d.specdata1, minor: d.specdata2)
            default: throw NFS4Status.badtype
            }
            let allowDevices = call.access.squash == .noRootSquash && call.credentials.uid == 0
            node = try fs.mknod(dir, name, kind: kind, attributes: set, allowDevices: allowDevices, as: call.credentials)
        case .other:
            throw NFS4Status.badtype
        }
        current = .object(node.handle)
        return .create(.ok(NFS4CreateResOK(changeInfo: NFS4AttributeMapping.changeInfo(node.directory), attrSet: mask)))
    }

    mutating func remove(_ name: NFS4Name) throws -> NFS4Result {
        let (dir, call) = try object(modifies: true)
        try willChange(dir, name.bytes, credentials: call.credentials)
        let wcc: WccData
        do {
            wcc = try fs.remove(dir, name.bytes, as: call.credentials)
        } catch FSError.errno(let e) where e == EISDIR || e == EPERM {
            // REMOVE takes directories too (§18.25): unlink(2) refuses them.
            wcc = try fs.rmdir(dir, name.bytes, as: call.credentials)
        }
        return .remove(.ok(NFS4AttributeMapping.changeInfo(wcc)))
    }

    mutating func rename(_ args: NFS4RenameArgs) throws -> NFS4Result {
        let (target, call) = try object(modifies: true)
        let source = try savedObject(sameExportAs: target)
        try willChange(source, args.oldName.bytes, credentials: call.credentials)
        try willChange(target, args.newName.bytes, credentials: call.credentials)
        let (from, to) = try fs.rename(from: source, args.oldName.bytes, to: target, args.newName.bytes, as: call.credentials)
        return .rename(.ok(NFS4RenameResOK(sourceChangeInfo: NFS4AttributeMapping.changeInfo(from),
                                           targetChangeInfo: NFS4AttributeMapping.changeInfo(to))))
    }

    mutating func readdir(_ args: NFS4ReaddirArgs) throws -> NFS4Result {
        guard args.attrRequest.intersection(NFS4Attribute.writeOnly).isEmpty else { throw NFS4Status.inval }
        let maxCount = min(args.maxCount, UInt32(NFS4AttributeMapping.maxIOSize))
        var list = NFS4DirectoryListWriter(maxCount: maxCount, dirCount: args.dirCount, allocator: allocator)
        switch try currentNode() {
        case .pseudo(let path):
            // Cookies: 3 + the child's index (1 and 2 are reserved, §18.23.3).
            let children = pseudo().children(of: path)
            guard args.cookie == 0 || (3...UInt64(children.count + 2)).contains(args.cookie) else {
                throw NFS4Status.badCookie
            }
            let start = args.cookie == 0 ? 0 : Int(args.cookie) - 2
            var eof = true
            for index in start..<children.count {
                let child = try pseudo().node(at: path + [children[index]])
                let fattr = try attributes(of: child, requested: args.attrRequest)
                if !list.append(cookie: UInt64(index + 3), name: NFS4Name(children[index]), attributes: fattr) {
                    eof = false
                    break
                }
            }
            if list.count == 0 && !eof { throw NFS4Status.toosmall }
            return .readdir(.ok(NFS4ReaddirResOK(cookieVerifier: Verifier4(UInt64(state.epoch)), list: list, eof: eof)))
        case .object(let h):
            let call = try authorize(h, modifies: false)
            let listing = try fs.readdir(h, cookie: args.cookie, cookieVerifier: args.cookieVerifier.value,
                                         maxBytes: Int(maxCount), plus: true, as: call.credentials)
            let needStat = !args.attrRequest.intersection(NFS4AttributeMapping.fsStatAttributes).isEmpty
            let stat = needStat ? try fs.fsstat(h, as: call.credentials) : nil
            var eof = listing.eof
            for entry in listing.entries where entry.name != [0x2E] && entry.name != [0x2E, 0x2E] {
                let fattr: NFS4Fattr
                if let attributes = entry.attributes {
                    fattr = NFS4AttributeMapping.attributes(attributes, handle: entry.handle?.bytes, stat: stat,
                                                            leaseSeconds: state.leaseSeconds, for: call.access.options)
                        .encode(requested: args.attrRequest, allocator: allocator)
                } else {
                    // No attributes (no search permission, a mount point): rdattr_error alone.
                    var a = NFS4Attributes()
                    a.rdattrError = .access
                    a.fileid = entry.fileid
                    a.mountedOnFileid = entry.fileid
                    fattr = a.encode(requested: args.attrRequest, allocator: allocator)
                }
                if !list.append(cookie: entry.cookie, name: NFS4Name(entry.name), attributes: fattr) {
                    eof = false
                    break
                }
            }
            if list.count == 0 && !eof { throw NFS4Status.toosmall }
            return .readdir(.ok(NFS4ReaddirResOK(cookieVerifier: Verifier4(listing.cookieVerifier), list: list, eof: eof)))
        }
    }
}
