import Testing

@Test func placeholder_ONCRPCTests() {}
