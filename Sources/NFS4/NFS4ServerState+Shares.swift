import NFS4State
import NFSCore

// The NFSv4 share reservations NFSv3 meets (RFC 8881 §9.7), through NFSCore's ShareReservations.
extension NFS4ServerState: ShareDenials {
    var anyDenial: Bool { denyingOpens.anyDenial }

    func denies(fsid: UInt64, fileid: UInt64, write: Bool) -> Bool {
        let file = FileKey(fsid: fsid, fileid: fileid)
        return tables.withLockedValue { write ? $0.opens.deniesWrite(file) : $0.opens.deniesRead(file) }
    }
}
