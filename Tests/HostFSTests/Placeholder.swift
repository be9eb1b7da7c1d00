import Testing

@Test func placeholder_HostFSTests() {}
