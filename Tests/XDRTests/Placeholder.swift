import Testing

@Test func placeholder_XDRTests() {}
