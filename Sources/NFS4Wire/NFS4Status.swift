// nfsstat4 (RFC 8881 §15.1, with RFC 7862 §11.1's additions for 4.2) and the
// operation numbers of the fore channel (nfs_opnum4) and the back channel
// (nfs_cb_opnum4).

/// nfsstat4: every value of RFC 8881 §15 and RFC 7862 §11.
public enum NFS4Status: UInt32, Sendable, Hashable, Error, CaseIterable {
    case ok = 0
    case perm = 1
    case noent = 2
    case io = 5
    case nxio = 6
    case access = 13
    case exist = 17
    case xdev = 18
    case notdir = 20
    case isdir = 21
    case inval = 22
    case fbig = 27
    case nospc = 28
    case rofs = 30
    case mlink = 31
    case nametoolong = 63
    case notempty = 66
    case dquot = 69
    case stale = 70
    case badhandle = 10001
    case badCookie = 10003
    case notsupp = 10004
    case toosmall = 10005
    case serverfault = 10006
    case badtype = 10007
    case delay = 10008
    case same = 10009
    case denied = 10010
    case expired = 10011
    case locked = 10012
    case grace = 10013
    case fhexpired = 10014
    case shareDenied = 10015
    case wrongsec = 10016
    case clidInuse = 10017
    /// NFSv4.0 only; never returned by a 4.1 server (RFC 8881 §15.1.1.4).
    case resource = 10018
    case moved = 10019
    case nofilehandle = 10020
    case minorVersMismatch = 10021
    case staleClientid = 10022
    case staleStateid = 10023
    case oldStateid = 10024
    case badStateid = 10025
    case badSeqid = 10026
    case notSame = 10027
    case lockRange = 10028
    case symlink = 10029
    case restorefh = 10030
    case leaseMoved = 10031
    case attrnotsupp = 10032
    case noGrace = 10033
    case reclaimBad = 10034
    case reclaimConflict = 10035
    case badxdr = 10036
    case locksHeld = 10037
    case openmode = 10038
    case badowner = 10039
    case badchar = 10040
    case badname = 10041
    case badRange = 10042
    case lockNotsupp = 10043
    case opIllegal = 10044
    case deadlock = 10045
    case fileOpen = 10046
    case adminRevoked = 10047
    case cbPathDown = 10048
    case badiomode = 10049
    case badlayout = 10050
    case badSessionDigest = 10051
    case badsession = 10052
    case badslot = 10053
    case completeAlready = 10054
    case connNotBoundToSession = 10055
    case delegAlreadyWanted = 10056
    case backChanBusy = 10057
    case layouttrylater = 10058
    case layoutunavailable = 10059
    case nomatchingLayout = 10060
    case recallconflict = 10061
    case unknownLayouttype = 10062
    case seqMisordered = 10063
    case sequencePos = 10064
    case reqTooBig = 10065
    case repTooBig = 10066
    case repTooBigToCache = 10067
    case retryUncachedRep = 10068
    case unsafeCompound = 10069
    case tooManyOps = 10070
    case opNotInSession = 10071
    case hashAlgUnsupp = 10072
    // 10073 is unassigned.
    case clientidBusy = 10074
    case pnfsIoHole = 10075
    case seqFalseRetry = 10076
    case badHighSlot = 10077
    case deadsession = 10078
    case encrAlgUnsupp = 10079
    case pnfsNoLayout = 10080
    case notOnlyOp = 10081
    case wrongCred = 10082
    case wrongType = 10083
    case dirdelegUnavail = 10084
    case rejectDeleg = 10085
    case returnconflict = 10086
    case delegRevoked = 10087
    // RFC 7862 §11.1 (NFSv4.2).
    case partnerNotsupp = 10088
    case partnerNoAuth = 10089
    case unionNotsupp = 10090
    case offloadDenied = 10091
    case wrongLfs = 10092
    case badlabel = 10093
    case offloadNoReqs = 10094

    /// The RFC's name, e.g. NFS4ERR_BAD_STATEID (derived from the case name,
    /// which Swift prints for an enum that is not CustomStringConvertible).
    public var rfcName: String {
        if self == .ok { return "NFS4_OK" }
        var name = "NFS4ERR_"
        for character in String(describing: self) {
            if character.isUppercase { name.append("_") }
            name.append(contentsOf: character.uppercased())
        }
        return name
    }
}
