namespace Cora.Tests;

/// <summary>A written PNG read back, for tests that check what a plot drew.</summary>
internal static class PngPixels
{
    /// <summary>How many pixels of <paramref name="png"/> have exactly the colour <paramref name="c"/> (alpha aside).</summary>
    public static int Count(string png, ScottPlot.Color c)
    {
        using var bmp = SkiaSharp.SKBitmap.Decode(png);
        return Enumerable.Range(0, bmp.Width * bmp.Height).Count(i => { var p = bmp.GetPixel(i % bmp.Width, i / bmp.Width); return p.Red == c.R && p.Green == c.G && p.Blue == c.B; });
    }

    public static (int Width, int Height) Size(string png)
    {
        using var bmp = SkiaSharp.SKBitmap.Decode(png);
        return (bmp.Width, bmp.Height);
    }
}
