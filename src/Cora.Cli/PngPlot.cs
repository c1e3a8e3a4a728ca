using System.IO.Compression;

namespace Cora.Cli;

/// <summary>A dependency-free line chart written as PNG (training loss and validation AUC).</summary>
public static class PngPlot
{
    public static void Write(string path, string title, IReadOnlyList<(string name, (int r, int g, int b) color, IReadOnlyList<(double x, double y)> points)> series)
    {
        const int W = 800, H = 480, M = 50;
        var px = new byte[W * H * 3];
        Array.Fill(px, (byte)255);
        void Set(int x, int y, (int r, int g, int b) c)
        {
            if (x < 0 || y < 0 || x >= W || y >= H) return;
            int i = (y * W + x) * 3; px[i] = (byte)c.r; px[i + 1] = (byte)c.g; px[i + 2] = (byte)c.b;
        }
        void Line(double x0, double y0, double x1, double y1, (int, int, int) c)
        {
            int n = (int)Math.Max(Math.Abs(x1 - x0), Math.Abs(y1 - y0)) + 1;
            for (int k = 0; k <= n; k++) { double t = k / (double)n; Set((int)(x0 + t * (x1 - x0)), (int)(y0 + t * (y1 - y0)), c); Set((int)(x0 + t * (x1 - x0)), (int)(y0 + t * (y1 - y0)) + 1, c); }
        }
        var grey = (200, 200, 200);
        Line(M, H - M, W - M, H - M, (0, 0, 0));
        Line(M, M, M, H - M, (0, 0, 0));
        for (int g = 1; g < 5; g++) Line(M, M + g * (H - 2 * M) / 5.0, W - M, M + g * (H - 2 * M) / 5.0, grey);
        // Each series is scaled to its own range (loss and AUC differ in scale); legend colors tell them apart.
        foreach (var (_, color, pts) in series)
        {
            if (pts.Count == 0) continue;
            double xmin = pts.Min(p => p.x), xmax = Math.Max(pts.Max(p => p.x), xmin + 1);
            double ymin = pts.Min(p => p.y), ymax = Math.Max(pts.Max(p => p.y), ymin + 1e-9);
            (double, double) Map((double x, double y) p) => (M + (p.x - xmin) / (xmax - xmin) * (W - 2 * M), H - M - (p.y - ymin) / (ymax - ymin) * (H - 2 * M));
            for (int i = 1; i < pts.Count; i++)
            {
                var (ax, ay) = Map(pts[i - 1]); var (bx, by) = Map(pts[i]);
                Line(ax, ay, bx, by, color);
            }
            if (pts.Count == 1) { var (ax, ay) = Map(pts[0]); for (int d = -3; d <= 3; d++) { Set((int)ax + d, (int)ay, color); Set((int)ax, (int)ay + d, color); } }
        }
        for (int s = 0; s < series.Count; s++)          // legend swatches, top right
            for (int y = 0; y < 10; y++) for (int x = 0; x < 30; x++) Set(W - M - 40 + x, M / 2 + s * 14 + y - 15, series[s].color);
        WritePng(path, W, H, px);
    }

    private static uint Crc32(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }

    private static void WritePng(string path, int w, int h, byte[] rgb)
    {
        using var ms = new MemoryStream();
        ms.Write(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A });
        void Chunk(string type, byte[] data)
        {
            var len = BitConverter.GetBytes(data.Length); Array.Reverse(len); ms.Write(len);
            var td = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            ms.Write(td);
            var crc = BitConverter.GetBytes(Crc32(td)); Array.Reverse(crc); ms.Write(crc);
        }
        var ihdr = new byte[13];
        BitConverter.GetBytes(w).Reverse().ToArray().CopyTo(ihdr, 0);
        BitConverter.GetBytes(h).Reverse().ToArray().CopyTo(ihdr, 4);
        ihdr[8] = 8; ihdr[9] = 2;
        Chunk("IHDR", ihdr);
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
            for (int y = 0; y < h; y++) { z.WriteByte(0); z.Write(rgb, y * w * 3, w * 3); }
        Chunk("IDAT", raw.ToArray());
        Chunk("IEND", Array.Empty<byte>());
        Microsoft.ML.Cora.Llm.AtomicFile.Write(path, s => s.Write(ms.ToArray()));
    }
}
