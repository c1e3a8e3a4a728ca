using System.Security.Cryptography;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora.Llm;

/// <summary>
/// The files that make up an LLM, defined once and used alike for its checksum, for embedding it in a saved model and for
/// reloading an embedded copy: the weights (a llama2.c .bin, or a Hugging Face folder's config.json, safetensors shards and
/// their index, or pytorch_model.bin) and the tokenizer file it is loaded with. A changed tokenizer changes the checksum.
/// </summary>
public static class LlmFiles
{
    /// <summary>The file set of the LLM at <paramref name="source"/>, loaded with <paramref name="tokenizerPath"/> (null = the one found beside it).</summary>
    public static IReadOnlyList<string> Of(string source, string? tokenizerPath = null)
    {
        if (File.Exists(source))
        {
            FileChecks.RequireRegularFile(source, "LLM");
            return new[] { Path.GetFullPath(source), Path.GetFullPath(tokenizerPath ?? TextTokenizer.PathBesideLlama2c(source)) }.Distinct().ToList();
        }
        if (!Directory.Exists(source)) throw new FileNotFoundException($"LLM not found: '{ErrorText.Elide(source)}'.", source);
        // Exactly what the loader reads: config.json, then the index and the shards it names, or model.safetensors, or
        // pytorch_model.bin; every other *.safetensors in the folder as well (a changed file beside them changes the checksum too).
        string index = Path.Combine(source, "model.safetensors.index.json");
        var read = new List<string> { Path.Combine(source, "config.json") };
        if (File.Exists(index)) { read.Add(index); read.AddRange(CheckpointLoader.IndexedShards(index).Select(s => Path.Combine(source, s))); }
        foreach (var name in new[] { "model.safetensors", "pytorch_model.bin" })
            if (File.Exists(Path.Combine(source, name))) read.Add(Path.Combine(source, name));
        read.AddRange(Directory.EnumerateFiles(source, "*.safetensors"));
        var files = read.Select(Path.GetFullPath).Distinct().OrderBy(f => f, StringComparer.Ordinal).ToList();
        files.Add(Path.GetFullPath(tokenizerPath ?? TextTokenizer.PathInHuggingFaceFolder(source)));
        return files.Distinct().ToList();
    }

    /// <summary>SHA-256 over each file's name, length and contents, in order (regular files only: no device or FIFO is ever read).</summary>
    public static string Checksum(IReadOnlyList<string> files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var f in files)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes($"{Path.GetFileName(f)}\n{new FileInfo(f).Length}\n"));
            AppendFile(sha, f);
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>The plain SHA-256 of one regular file, streamed (lower-case hex).</summary>
    public static string FileSha256(string path)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AppendFile(sha, path);
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>Streams a regular file's bytes into <paramref name="sha"/> (no device or FIFO is ever read).</summary>
    internal static void AppendFile(IncrementalHash sha, string path)
    {
        FileChecks.RequireRegularFile(path, "LLM file");
        using var s = File.OpenRead(path);
        var buf = new byte[1 << 20];
        int n;
        while ((n = s.Read(buf, 0, buf.Length)) > 0) sha.AppendData(buf, 0, n);
    }
}
