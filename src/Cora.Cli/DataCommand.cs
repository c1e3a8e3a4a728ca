using System.CommandLine;
using Microsoft.ML.Cora.Data;

namespace Cora.Cli;

/// <summary><c>cora data</c>: converters from public data sets to Cora's TSV layout.</summary>
internal static class DataCommand
{
    public static Command Create(CliContext c)
    {
        var cmd = new Command("data", "Convert public data sets to Cora's TSV layout (train/valid/test/items.tsv).");
        Command Recipe(string name, string desc, Option<string> a, Option<string> b, Func<string, string, SplitDataset> run)
        {
            var outDir = Cli.Req("--out", "Output folder.");
            var sub = new Command(name, desc) { a, b, outDir };
            sub.SetAction(p =>
            {
                string dir = p.GetValue(outDir)!;
                // A folder that exists may hold the inputs (or be reached through a link): the files it will get are checked as files.
                if (Directory.Exists(dir))
                    Cli.CheckOutputs(new[] { "train.tsv", "valid.tsv", "test.tsv", "items.tsv" }.Select(f => ("--out", (string?)Path.Combine(dir, f))),
                        new[] { p.GetValue(a), p.GetValue(b) });
                var ds = run(p.GetValue(a)!, p.GetValue(b)!);
                ds.Write(p.GetValue(outDir)!);
                c.Out.WriteLine($"{name}: train {ds.Train.Count}, valid {ds.Valid.Count}, test {ds.Test.Count} rows; {ds.Items.Count} items; users {ds.Train.Concat(ds.Valid).Concat(ds.Test).Select(r => r.UserId).Distinct().Count()} -> {p.GetValue(outDir)}");
                if (ds.DroppedUntitled.Rows > 0)
                    c.Out.WriteLine($"left out {ds.DroppedUntitled.Rows} ratings of {ds.DroppedUntitled.Items} items that have no title (prompts need one)");
                return 0;
            });
            return sub;
        }
        cmd.Subcommands.Add(Recipe("movielens-1m", "MovieLens-1M ratings.dat + movies.dat -> CoLLM's split (label = rating > 3; 10/5/5 months from 2001-06).",
            Cli.Req("--ratings", "ratings.dat"), Cli.Req("--movies", "movies.dat"), DatasetRecipes.MovieLens1M));
        cmd.Subcommands.Add(Recipe("movielens-100k", "MovieLens-100K u.data + u.item -> time split 80/10/10 (label = rating > 3).",
            Cli.Req("--ratings", "u.data"), Cli.Req("--movies", "u.item"), DatasetRecipes.MovieLens100K));
        cmd.Subcommands.Add(Recipe("amazon", "Amazon reviews 2018 JSON lines + metadata -> CoLLM's Book recipe (2017, >20 ratings, label = 5 stars).",
            Cli.Req("--reviews", "reviews JSON lines"), Cli.Req("--meta", "metadata JSON lines"), (r, m) => DatasetRecipes.Amazon2018(r, m)));
        return cmd;
    }
}
