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
    internal LlamaForCausalLM Model { get; }
    /// <summary>The tokenizer found beside the model.</summary>
    public ITextTokenizer Tokenizer { get; }
    /// <summary>The path the model was loaded from (folder or .bin).</summary>
    public string SourcePath { get; }
    /// <summary>Where the weights live.</summary>
    public Device Device { get; private set; }
    /// <summary>The model's architecture.</summary>
    public LlamaConfig Config => Model.Config;

    internal LanguageModel(LlamaForCausalLM model, ITextTokenizer tokenizer, string sourcePath)
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
    public static LanguageModel Load(string path, string? tokenizerPath = null, string? device = null, bool allowPickle = false, string? dtype = null) =>
        Load(path, ComputeTarget.Resolve(device, dtype), tokenizerPath, allowPickle);

    /// <summary>Loads a Hugging Face folder or a llama2.c .bin onto a resolved device and dtype (see the overload above).</summary>
    /// <param name="path">The model folder or .bin.</param>
    /// <param name="target">Where to build the model, and its dtype.</param>
    /// <param name="tokenizerPath">Overrides the tokenizer found beside the weights.</param>
    /// <param name="allowPickle">Also read a folder's pickled PyTorch checkpoint (pytorch_model.bin), which can run code when read: only for files you trust.</param>
    public static LanguageModel Load(string path, ComputeTarget target, string? tokenizerPath = null, bool allowPickle = false)
    {
        var (dev, dt) = target;
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

    /// <summary>The files of this LLM (weights, config, tokenizer): one definition for checksum, embedding and reload.</summary>
    public IReadOnlyList<string> Files => Llm.LlmFiles.Of(SourcePath, Tokenizer.Source);

    /// <summary>SHA-256 over the LLM's files (names, lengths, contents): identifies the exact frozen LLM and its tokenizer.</summary>
    public string Checksum() => Llm.LlmFiles.Checksum(Files);

    /// <summary>Pads token id rows into (ids [B, T], mask [B, T]) on the model's device, on the right (default: the causal
    /// fast path of attention) or on the left (the paper's code; needs an explicit mask).</summary>
    public (Tensor ids, Tensor mask) Pad(IReadOnlyList<IReadOnlyList<int>> rows, int padId = 0, bool left = false)
    {
        int b = rows.Count, t = Math.Max(1, rows.Max(r => r.Count));
        var ids = new long[b * t];
        var mask = new long[b * t];
        for (int i = 0; i < b; i++)
        {
            int offset = left ? t - rows[i].Count : 0;
            for (int j = 0; j < rows[i].Count; j++) { ids[i * t + offset + j] = rows[i][j]; mask[i * t + offset + j] = 1; }
        }
        return (torch.tensor(ids, new long[] { b, t }, device: Device), torch.tensor(mask, new long[] { b, t }, device: Device));
    }

    /// <summary>Frees the weights.</summary>
    public void Dispose() => Model.Dispose();
}
