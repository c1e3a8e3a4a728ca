using System.Security.Cryptography;
using TorchSharp;
using Microsoft.ML.Cora.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Llm;

/// <summary>
/// A frozen LLM with its tokenizer, loaded from what users have: a Hugging Face folder or a llama2.c
/// <c>.bin</c> with its tokenizer beside it.
/// </summary>
public sealed class LanguageModel : IDisposable
{
    public LlamaForCausalLM Model { get; }
    public ITextTokenizer Tokenizer { get; }
    /// <summary>The path the model was loaded from (folder or .bin).</summary>
    public string SourcePath { get; }
    public Device Device { get; private set; }
    public LlamaConfig Config => Model.Config;

    public LanguageModel(LlamaForCausalLM model, ITextTokenizer tokenizer, string sourcePath)
    {
        Model = model; Tokenizer = tokenizer; SourcePath = sourcePath; Device = model.HeadWeight.device;
        Model.eval();
    }

    /// <summary>
    /// Loads a Hugging Face folder or a llama2.c .bin. The model is built directly on <paramref name="device"/> in the
    /// LLM dtype (<paramref name="dtype"/>: auto = bf16 on CUDA, fp32 on the CPU) and each tensor is converted as it is
    /// copied in, so the weights exist once, in the chosen dtype.
    /// </summary>
    /// <param name="tokenizerPath">Overrides the tokenizer found beside the weights.</param>
    public static LanguageModel Load(string path, string? tokenizerPath = null, string? device = null, bool allowPickle = false, string? dtype = null)
    {
        var dev = CoraDevice.Resolve(device);
        var dt = CoraDevice.ResolveDtype(dtype, dev);
        LlamaForCausalLM model;
        ITextTokenizer tok;
        if (Directory.Exists(path))
        {
            using (CoraDevice.BuildScope(dev, dt)) model = CheckpointLoader.LoadHuggingFace(path, allowPickle);
            tok = tokenizerPath is null ? TextTokenizer.FromHuggingFaceFolder(path) : TextTokenizer.Open(tokenizerPath);
        }
        else if (File.Exists(path))
        {
            if (!path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
                throw new NotSupportedException($"'{path}': expected a Hugging Face model folder or a llama2.c .bin checkpoint.");
            using (CoraDevice.BuildScope(dev, dt)) model = CheckpointLoader.LoadLlama2c(path);
            tok = tokenizerPath is null ? TextTokenizer.BesideLlama2c(path) : TextTokenizer.Open(tokenizerPath);
        }
        else throw new FileNotFoundException($"LLM not found: '{path}'. Give a Hugging Face model folder or a llama2.c .bin checkpoint.", path);
        var lm = new LanguageModel(model, tok, Path.GetFullPath(path));
        return lm.To(dev, dt);
    }

    /// <summary>The dtype of the frozen weights (bf16, fp16 or fp32).</summary>
    public ScalarType Dtype => Model.HeadWeight.dtype;

    /// <summary>Moves the frozen weights to <paramref name="device"/> and, when given, <paramref name="dtype"/> (RMSNorm still computes in fp32).</summary>
    public LanguageModel To(Device device, ScalarType? dtype = null)
    {
        if (dtype is { } t) Model.to(device, t); else Model.to(device);
        Device = device;
        return this;
    }

    /// <summary>The files that hold the weights (for checksums and embedding in model zips).</summary>
    public IReadOnlyList<string> WeightFiles()
    {
        if (File.Exists(SourcePath)) return new[] { SourcePath };
        return Directory.EnumerateFiles(SourcePath)
            .Where(f => f.EndsWith(".safetensors") || f.EndsWith(".json") || f.EndsWith(".model") || Path.GetFileName(f) == "pytorch_model.bin")
            .OrderBy(f => f, StringComparer.Ordinal).ToList();
    }

    /// <summary>SHA-256 over the weight files' names and contents: identifies the exact frozen LLM.</summary>
    public string Checksum() => ChecksumOf(SourcePath);

    /// <remarks>For a single file this is the plain SHA-256 of the file (what <c>sha256sum</c> prints).</remarks>
    public static string ChecksumOf(string path)
    {
        if (File.Exists(path))
        {
            using var fs = File.OpenRead(path);
            return Convert.ToHexString(SHA256.HashData(fs)).ToLowerInvariant();
        }
        if (!Directory.Exists(path)) throw new FileNotFoundException($"LLM not found: '{path}'.", path);
        using var sha = SHA256.Create();
        IEnumerable<string> files = Directory.EnumerateFiles(path).Where(f => f.EndsWith(".safetensors") || Path.GetFileName(f) == "config.json" || Path.GetFileName(f) == "pytorch_model.bin").OrderBy(f => f, StringComparer.Ordinal);
        foreach (var f in files)
        {
            var name = System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(f) + "\n");
            sha.TransformBlock(name, 0, name.Length, null, 0);
            using var s = File.OpenRead(f);
            var buf = new byte[1 << 20];
            int n;
            while ((n = s.Read(buf, 0, buf.Length)) > 0) sha.TransformBlock(buf, 0, n, null, 0);
        }
        sha.TransformFinalBlock(Array.Empty<byte>(), 0, 0);
        return Convert.ToHexString(sha.Hash!).ToLowerInvariant();
    }

    /// <summary>Right-pads token id rows into (ids [B, T], mask [B, T]) on the model's device.</summary>
    public (Tensor ids, Tensor mask) Pad(IReadOnlyList<IReadOnlyList<int>> rows, int padId = 0)
    {
        int b = rows.Count, t = Math.Max(1, rows.Max(r => r.Count));
        var ids = new long[b * t];
        var mask = new long[b * t];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < rows[i].Count; j++) { ids[i * t + j] = rows[i][j]; mask[i * t + j] = 1; }
        return (torch.tensor(ids, new long[] { b, t }, device: Device), torch.tensor(mask, new long[] { b, t }, device: Device));
    }

    public void Dispose() => Model.Dispose();
}
