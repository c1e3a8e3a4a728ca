using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.IO;

/// <summary>
/// Reader and writer for the safetensors format (8-byte little-endian header length, JSON header of
/// name -> {dtype, shape, data_offsets}, then raw little-endian data). Every entry is checked against the
/// file: a truncated file or an inconsistent header gives an error naming the file and the tensor.
/// </summary>
internal sealed class SafetensorsFile
{
    public sealed record Entry(string Name, string DType, long[] Shape, long Begin, long End);

    public string Path { get; }
    public IReadOnlyDictionary<string, Entry> Entries { get; }
    private readonly long _dataStart;

    private SafetensorsFile(string path, Dictionary<string, Entry> entries, long dataStart)
    { Path = path; Entries = entries; _dataStart = dataStart; }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file not found: '{path}'.", path);
        Microsoft.ML.Cora.IO.FileChecks.RequireRegularFile(path, "Weights file");
        using var fs = File.OpenRead(path);
        long length = fs.Length;
        if (length < 8) throw new InvalidDataException($"{path}: truncated safetensors file ({length} bytes, no header).");
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        ulong headerLen = BitConverter.ToUInt64(lenBytes);
        if (headerLen > (ulong)(length - 8) || headerLen > 100_000_000)
            throw new InvalidDataException($"{path}: header length {headerLen} exceeds the file ({length} bytes): truncated or not a safetensors file.");
        var header = new byte[headerLen];
        fs.ReadExactly(header);
        JsonObject root;
        try { root = JsonNode.Parse(header) as JsonObject ?? throw new InvalidDataException("header is not a JSON object"); }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        { throw new InvalidDataException($"{path}: invalid safetensors header ({e.Message}).", e); }
        long dataStart = 8 + (long)headerLen, dataLen = length - dataStart;
        var entries = new Dictionary<string, Entry>();
        // Every header value is checked before any tensor is made: dtype, rank, dimensions, the byte count the shape needs,
        // offsets inside the file, no overlaps. Nothing malformed reaches libtorch.
        InvalidDataException Bad(string name, string what) => new($"{path}: tensor '{ErrorText.Elide(name, 80)}': {what}");
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__") continue;
            if (node is not JsonObject e) throw Bad(name, "header entry is not an object.");
            string dtype;
            long[] shape;
            long begin, end;
            try
            {
                dtype = (string?)e["dtype"] ?? throw Bad(name, "no dtype.");
                shape = (e["shape"] as JsonArray)?.Select(x => x!.GetValue<long>()).ToArray() ?? throw Bad(name, "no shape.");
                var offs = e["data_offsets"] as JsonArray ?? throw Bad(name, "no data_offsets.");
                if (offs.Count != 2) throw Bad(name, $"data_offsets has {offs.Count} values, expected 2.");
                begin = offs[0]!.GetValue<long>(); end = offs[1]!.GetValue<long>();
            }
            catch (Exception x) when (x is InvalidOperationException or FormatException or NullReferenceException or OverflowException)
            { throw Bad(name, $"malformed header value ({x.Message})."); }
            if (shape.Length > 8) throw Bad(name, $"rank {shape.Length} is more than 8.");
            if (shape.Any(d => d < 0)) throw Bad(name, $"negative dimension in shape [{string.Join(", ", shape)}].");
            long expected;
            try { expected = checked(shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype, path, name)); }
            catch (OverflowException) { throw Bad(name, $"shape [{string.Join(", ", shape)}] is too large."); }
            if (begin < 0 || end < begin || end - begin != expected)
                throw Bad(name, $"data_offsets [{begin}, {end}] hold {end - begin} bytes, shape [{string.Join(", ", shape)}] of {dtype} needs {expected}.");
            if (end > dataLen)
                throw new InvalidDataException($"{path}: truncated: tensor '{ErrorText.Elide(name, 80)}' ends at byte {dataStart + end} but the file has {length} bytes.");
            entries[name] = new Entry(name, dtype, shape, begin, end);
        }
        var sorted = entries.Values.Where(x => x.End > x.Begin).OrderBy(x => x.Begin).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Begin < sorted[i - 1].End)
                throw new InvalidDataException($"{path}: tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap in the file; it is corrupt or crafted.");
        return new SafetensorsFile(path, entries, dataStart);
    }

    private static int ElementSize(string dtype, string path, string name) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" => 1,
        _ => throw new NotSupportedException($"{path}: tensor '{name}': dtype '{dtype}' is not supported."),
    };

    private static ScalarType ToScalar(string dtype) => dtype switch
    {
        "F64" => ScalarType.Float64, "F32" => ScalarType.Float32, "F16" => ScalarType.Float16, "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64, "I32" => ScalarType.Int32, "I16" => ScalarType.Int16, "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte, "BOOL" => ScalarType.Bool,
        _ => throw new NotSupportedException($"safetensors dtype '{dtype}' is not supported."),
    };

    private static string FromScalar(ScalarType t) => t switch
    {
        ScalarType.Float64 => "F64", ScalarType.Float32 => "F32", ScalarType.Float16 => "F16", ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64", ScalarType.Int32 => "I32", ScalarType.Int16 => "I16", ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8", ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"cannot write dtype {t} to safetensors."),
    };

    /// <summary>Reads one tensor onto the CPU in its stored dtype.</summary>
    public Tensor Read(string name)
    {
        if (!Entries.TryGetValue(name, out var e)) throw new KeyNotFoundException($"{Path}: no tensor '{name}'.");
        var t = torch.empty(e.Shape, ToScalar(e.DType));
        long n = e.End - e.Begin;
        if (n == 0) return t;
        using var fs = File.OpenRead(Path);
        fs.Seek(_dataStart + e.Begin, SeekOrigin.Begin);
        var buffer = new byte[n];
        int read = fs.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (read != n) throw new InvalidDataException($"{Path}: truncated while reading tensor '{name}'.");
        t.bytes = buffer;
        return t;
    }

    /// <summary>Writes tensors (moved to the CPU, made contiguous) atomically to <paramref name="path"/>.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        AtomicFile.Write(path, fs => Write(fs, tensors, metadata));

    /// <summary>Writes tensors to a stream, one tensor in host memory at a time (the header is computed from shapes first).</summary>
    public static void Write(Stream stream, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var header = new JsonObject();
        if (metadata is not null) header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        foreach (var (name, tensor) in list)
        {
            long size = tensor.numel() * tensor.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = FromScalar(tensor.dtype),
                ["shape"] = new JsonArray(tensor.shape.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - headerBytes.Length % 8) % 8;
        var padded = new byte[headerBytes.Length + pad];
        headerBytes.CopyTo(padded, 0);
        for (int i = headerBytes.Length; i < padded.Length; i++) padded[i] = (byte)' ';
        stream.Write(BitConverter.GetBytes((ulong)padded.Length));
        stream.Write(padded);
        foreach (var (_, tensor) in list)
        {
            using var cpu = tensor.detach().cpu().contiguous();
            stream.Write(cpu.bytes);
        }
    }
}
