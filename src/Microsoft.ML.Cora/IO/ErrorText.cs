namespace Microsoft.ML.Cora.IO;

/// <summary>Error text helpers: one policy for quoting user values in messages.</summary>
internal static class ErrorText
{
    /// <summary>The value, elided in the middle when longer than <paramref name="max"/> characters.</summary>
    public static string Elide(string value, int max = 120) =>
        value.Length <= max ? value : value[..(max / 2 - 2)] + " ... " + value[^(max / 2 - 3)..] + $" ({value.Length} chars)";
}
