using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

/// <summary>
/// The data and LLM most tests run on: a slice of the shared MovieLens-1M CoLLM split with stories260K when ../shared is present,
/// else the synthetic stand-in (latent-factor data, a random LLaMA), so these tests run on any clone. Only tests that compare
/// against shared reference data (golden logits, the real split's counts, the reference prompt) use <see cref="TestPaths.Shared"/>.
/// </summary>
public static class Slice
{
    public static bool Real => TestPaths.SharedOrNull is { } s && File.Exists(Path.Combine(s, "models", "stories260K", "stories260K.bin"));

    public static string TrainPath => Real ? TestPaths.Shared("data", "ml-1m-collm", "train.tsv") : Synthetic.Paths.Train;
    public static string ValidPath => Real ? TestPaths.Shared("data", "ml-1m-collm", "valid.tsv") : Synthetic.Paths.Valid;
    public static string ItemsPath => Real ? TestPaths.Shared("data", "ml-1m-collm", "items.tsv") : Synthetic.Paths.Items;
    /// <summary>A llama2.c .bin (stories260K) or the synthetic Hugging Face folder.</summary>
    public static string LlmPath => Real ? TestPaths.Stories260K : Synthetic.LlmPath;

    /// <summary>A llama2.c .bin with a tokenizer beside it: stories260K, or the synthetic LLaMA exported to llama2.c's format.</summary>
    public static string Llama2cPath => Real ? TestPaths.Stories260K : Synthetic.Llama2cPath;

    /// <summary>Copies the LLM (weights and tokenizer) into <paramref name="dir"/>; returns the path to load.</summary>
    public static string CopyLlm(string dir)
    {
        if (Real)
        {
            File.Copy(TestPaths.Stories260K, Path.Combine(dir, "llm.bin"));
            File.Copy(Path.Combine(TestPaths.StoriesDir, "tok512.model"), Path.Combine(dir, "tok512.model"));
            return Path.Combine(dir, "llm.bin");
        }
        return Synthetic.CopyLlmFolder(Path.Combine(dir, "llm"));
    }

    private static readonly Lazy<(List<Interaction> train, List<Interaction> valid, ItemCatalog items)> Data = new(() =>
        (InteractionTsv.Read(TrainPath), InteractionTsv.Read(ValidPath), ItemCatalog.Read(ItemsPath)));

    public static List<Interaction> Train => Data.Value.train;
    public static List<Interaction> Valid => Data.Value.valid;
    public static ItemCatalog Items => Data.Value.items;

    public static MatrixFactorization SmallMf(int dim = 16) => MatrixFactorization.Train(Train.Take(4000).ToList(), Valid.Take(400).ToList(),
        new MatrixFactorizationOptions { EmbeddingDim = dim, MaxEpochs = 3, Patience = 2 });

    public static CoraModelOptions SmallOptions(CoraMethod method) => new()
    {
        Method = method,
        QueryGenerator = new QueryGeneratorOptions { NumLayers = 1, Hidden = 32, Heads = 4, FeedForward = 64 },
    };

    public static CoraModel Model(CoraMethod method, MatrixFactorization? mf = null) =>
        new(SmallOptions(method), method == CoraMethod.Mf ? null : LanguageModel.Load(LlmPath), mf ?? SmallMf(), Items);
}
