using Microsoft.ML.Cora.Llm;

namespace Microsoft.ML.Cora.Data;

/// <summary>
/// A small, self-generated stand-in for the shared data and model, for fresh machines without them:
/// synthetic interactions from latent user/item factors, and a randomly initialised LLaMA with a character-level
/// llama2.c-format tokenizer, written as a Hugging Face folder. It proves the pipeline runs; it says nothing about
/// model quality, and every caller must label it as synthetic.
/// </summary>
public static class SyntheticSetup
{
    public sealed record Paths(string Train, string Valid, string Items, string Llm);

    public static Paths Create(string dir, int users = 120, int items = 240, long seed = 2023)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random((int)seed);
        double Gauss() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        const int k = 4;
        var uf = Enumerable.Range(0, users + 1).Select(_ => Enumerable.Range(0, k).Select(_ => Gauss()).ToArray()).ToArray();
        var itf = Enumerable.Range(0, items + 1).Select(_ => Enumerable.Range(0, k).Select(_ => Gauss()).ToArray()).ToArray();
        string[] genres = { "Comedy", "Drama", "Action", "Romance" };
        var titles = Enumerable.Range(1, items).ToDictionary(i => i, i => $"Film {i} ({genres[Array.IndexOf(itf[i], itf[i].Max())]})");
        var rows = new List<(int u, int i, bool y, long t)>();
        long t0 = 1_000_000_000;
        for (int u = 1; u <= users; u++)
            for (int n = 0; n < 30; n++)
            {
                int i = rng.Next(1, items + 1);
                double s = uf[u].Zip(itf[i], (a, b) => a * b).Sum() + 0.5 * Gauss();
                rows.Add((u, i, s > 0, t0 + rng.Next(0, 10_000_000)));
            }
        rows = rows.OrderBy(r => r.t).ToList();
        var liked = new Dictionary<int, List<int>>();
        var all = new List<Interaction>();
        int cut = (int)(rows.Count * 0.8);
        var trainUsers = rows.Take(cut).Select(r => r.u).ToHashSet();
        var trainItems = rows.Take(cut).Select(r => r.i).ToHashSet();
        foreach (var r in rows)
        {
            if (!liked.TryGetValue(r.u, out var h)) liked[r.u] = h = new List<int>();
            all.Add(new Interaction(r.u, r.i, r.y, r.t, trainUsers.Contains(r.u) && trainItems.Contains(r.i), h.ToArray()));
            if (r.y) h.Add(r.i);
        }
        var paths = new Paths(Path.Combine(dir, "train.tsv"), Path.Combine(dir, "valid.tsv"), Path.Combine(dir, "items.tsv"), Path.Combine(dir, "random-llama"));
        InteractionTsv.Write(paths.Train, all.Take(cut));
        InteractionTsv.Write(paths.Valid, all.Skip(cut));
        new ItemCatalog(titles).Write(paths.Items);

        // Character-level llama2.c tokenizer: <unk>, <s>, </s>, 256 byte tokens, then printable ASCII.
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        pieces.AddRange(Enumerable.Range(32, 95).Select(c => ((char)c).ToString()));
        Directory.CreateDirectory(paths.Llm);
        Llama2cTokenizer.Write(Path.Combine(paths.Llm, "tokenizer.bin"), pieces, pieces.Select(_ => 0f).ToList());
        var config = new LlamaConfig
        {
            HiddenSize = 64, IntermediateSize = 172, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            VocabSize = pieces.Count, MaxPositionEmbeddings = 1024, RmsNormEps = 1e-5, TieWordEmbeddings = true,
        }.Validate("synthetic");
        using var model = LlamaForCausalLM.CreateRandom(config, seed);
        CheckpointLoader.SaveHuggingFace(model, paths.Llm);
        return paths;
    }
}
