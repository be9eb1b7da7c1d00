import Testing

@Test func placeholder_ExportsTests() {}
