using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Cora.Cli;

namespace Cora.Tests;

/// <summary>
/// The quickstart's synthetic stand-in (latent-factor interactions, a random LLaMA with a character tokenizer), generated once
/// per test run in a temporary folder: tests that do not compare against reference data use it, so they run on any clone.
/// </summary>
[TestClass]
public static class Synthetic
{
    private static readonly Lazy<(SyntheticSetup.Paths paths, List<Interaction> train, List<Interaction> valid, ItemCatalog items)> Data = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), "cora-tests", "synthetic-" + Environment.ProcessId);
        var p = SyntheticSetup.Create(dir);
        return (p, InteractionTsv.Read(p.Train), InteractionTsv.Read(p.Valid), ItemCatalog.Read(p.Items));
    });

    public static SyntheticSetup.Paths Paths => Data.Value.paths;
    public static string LlmPath => Paths.Llm;
    public static List<Interaction> Train => Data.Value.train;
    public static List<Interaction> Valid => Data.Value.valid;
    public static ItemCatalog Items => Data.Value.items;

    public static MatrixFactorization SmallMf(int dim = 8) => MatrixFactorization.Train(Train, Valid,
        new MatrixFactorizationOptions { EmbeddingDim = dim, MaxEpochs = 3, Patience = 2 });

    public static CoraModel Model(CoraMethod method, MatrixFactorization? mf = null, string? dtype = null) =>
        new(Slice.SmallOptions(method), method == CoraMethod.Mf ? null : LanguageModel.Load(LlmPath, dtype: dtype), mf ?? SmallMf(), Items);

    /// <summary>A private copy of the synthetic LLM's Hugging Face folder at <paramref name="dir"/> (created); returns it.</summary>
    public static string CopyLlmFolder(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(LlmPath)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return Path.GetFullPath(dir);
    }

    private static readonly Lazy<string> Tree = new(() =>
    {
        string root = Path.Combine(Path.GetDirectoryName(Paths.Train)!, "shared-stand-in");
        string data = Directory.CreateDirectory(Path.Combine(root, "data", "ml-1m-collm")).FullName;
        foreach (var f in new[] { Paths.Train, Paths.Valid, Paths.Items }) File.Copy(f, Path.Combine(data, Path.GetFileName(f)), overwrite: true);
        string models = Directory.CreateDirectory(Path.Combine(root, "models", "stories260K")).FullName;
        using (var lm = CheckpointLoader.LoadHuggingFace(LlmPath)) CheckpointLoader.SaveLlama2c(lm, Path.Combine(models, "stories260K.bin"));
        File.Copy(Path.Combine(LlmPath, "tokenizer.bin"), Path.Combine(models, "tok512.bin"), overwrite: true);
        return root;
    });

    /// <summary>
    /// A folder laid out like ../shared (data/ml-1m-collm/{train,valid,items}.tsv, models/stories260K/stories260K.bin with its
    /// llama2.c tokenizer beside) holding the synthetic data and the random LLaMA as a llama2.c checkpoint: what the README
    /// snippet and the notebooks read when ../shared is absent. It has no reference files.
    /// </summary>
    public static string SharedTree => Tree.Value;

    /// <summary>The synthetic LLaMA as a llama2.c <c>.bin</c> with its tokenizer beside.</summary>
    public static string Llama2cPath => Path.Combine(SharedTree, "models", "stories260K", "stories260K.bin");

    [AssemblyCleanup]
    public static void Cleanup()
    {
        if (!Data.IsValueCreated) return;
        try { Directory.Delete(Path.GetDirectoryName(Paths.Train)!, true); } catch (IOException) { }
    }
}
