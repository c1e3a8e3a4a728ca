using Microsoft.ML.Cora.IO;
using System.Text;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Cora.Llm;

/// <summary>Finds and opens the tokenizer of a checkpoint.</summary>
public static class TextTokenizer
{
    /// <summary>
    /// Opens a tokenizer file: <c>tokenizer.model</c> / <c>*.model</c> (SentencePiece), <c>tokenizer.json</c>
    /// (Hugging Face), or a llama2.c <c>tok*.bin</c>.
    /// </summary>
    public static ITextTokenizer Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Tokenizer file not found: '{path}'.", path);
        string name = Path.GetFileName(path);
        if (name.EndsWith(".model", StringComparison.OrdinalIgnoreCase)) return new SentencePieceTextTokenizer(path);
        if (name.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return new HuggingFaceJsonTokenizer(path);
        if (name.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return new Llama2cTokenizer(path);
        throw new NotSupportedException($"Unknown tokenizer file '{path}': expected a SentencePiece .model, a Hugging Face tokenizer.json or a llama2.c tok*.bin.");
    }

    /// <summary>The tokenizer of a Hugging Face folder (tokenizer.model preferred, then tokenizer.json).</summary>
    public static ITextTokenizer FromHuggingFaceFolder(string dir) => Open(PathInHuggingFaceFolder(dir));

    /// <summary>The tokenizer beside a llama2.c checkpoint: tokenizer.model or *.model (SentencePiece), else tokenizer.bin or tok*.bin.</summary>
    public static ITextTokenizer BesideLlama2c(string checkpoint) => Open(PathBesideLlama2c(checkpoint));

    /// <summary>Which file <see cref="FromHuggingFaceFolder"/> opens (without opening it).</summary>
    public static string PathInHuggingFaceFolder(string dir)
    {
        foreach (var f in new[] { "tokenizer.model", "tokenizer.json", "tokenizer.bin" })
            if (File.Exists(Path.Combine(dir, f))) return Path.Combine(dir, f);
        throw new FileNotFoundException($"No tokenizer in '{dir}': expected tokenizer.model (SentencePiece) or tokenizer.json (Hugging Face) (or a llama2.c tokenizer.bin).");
    }

    /// <summary>Which file <see cref="BesideLlama2c"/> opens (without opening it).</summary>
    public static string PathBesideLlama2c(string checkpoint)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(checkpoint))!;
        // SentencePiece models first: same ids as llama2.c's tokenizer, and a much faster encoder.
        var candidates = new[] { "tokenizer.model" }
            .Concat(Directory.EnumerateFiles(dir, "*.model").Select(Path.GetFileName).OrderBy(x => x)!)
            .Concat(new[] { "tokenizer.bin" })
            .Concat(Directory.EnumerateFiles(dir, "tok*.bin").Select(Path.GetFileName).OrderBy(x => x)!);
        foreach (var c in candidates)
            if (c is not null && File.Exists(Path.Combine(dir, c)) && Path.Combine(dir, c) != Path.GetFullPath(checkpoint)) return Path.Combine(dir, c);
        throw new FileNotFoundException($"No tokenizer beside '{checkpoint}': expected tokenizer.bin, tok*.bin (llama2.c) or a SentencePiece .model in '{dir}'.");
    }
}
